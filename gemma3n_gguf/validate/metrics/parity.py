"""Logit parity between a converted model and the reference, as the converter tests measure it.

What a correct f32 conversion achieves on the tiny fixture (parity-and-fixtures.md §3): max
|Δlogit| ~0.011 x logit std, mean KLD ~6e-6, top-1 1.000 where the reference's top-2 gap
exceeds 0.1 (near-ties flip on random models, so plain top-1 agreement is reported apart).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.core.stats import as_logit_matrix, jsonable, log_softmax, safe_ratio, token_kld

_BLOCK_ROWS = 16


@dataclass(frozen=True)
class ParityStats:
    """How far candidate logits are from the reference's, position by position."""

    n_positions: int
    logit_std: float
    """Standard deviation of all reference logits (the scale the |Δlogit| limits refer to)."""
    max_abs_dlogit: float
    mean_max_abs_dlogit: float
    """Mean over positions of each position's max |Δlogit|."""
    mean_kld: float
    """Mean over positions of KL(ref || cand) over the whole vocabulary."""
    top1_agreement: float
    confident_top1_agreement: float
    """Top-1 agreement where the reference's top-2 gap exceeds ``gap`` (NaN if none does)."""
    n_confident: int
    gap: float

    @property
    def max_abs_dlogit_rel(self) -> float:
        return safe_ratio(self.max_abs_dlogit, self.logit_std)

    @property
    def mean_max_abs_dlogit_rel(self) -> float:
        return safe_ratio(self.mean_max_abs_dlogit, self.logit_std)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_abs_dlogit_rel"] = self.max_abs_dlogit_rel
        data["mean_max_abs_dlogit_rel"] = self.mean_max_abs_dlogit_rel
        return jsonable(data)


def parity_stats(ref_logits: ArrayLike, cand_logits: ArrayLike, gap: float = 0.1) -> ParityStats:
    """Compare two logit matrices (n_positions, n_vocab) of the same token sequence."""
    ref = as_logit_matrix(ref_logits, "reference logits")
    cand = as_logit_matrix(cand_logits, "candidate logits")
    if ref.shape != cand.shape:
        raise ValidationError(f"logit shapes differ: reference {ref.shape}, candidate {cand.shape}")
    n_rows = ref.shape[0]
    if n_rows == 0:
        raise ValidationError("parity needs at least one position")
    row_max_diff = np.empty(n_rows)
    kld = np.empty(n_rows)
    total = total_sq = 0.0
    for start in range(0, n_rows, _BLOCK_ROWS):
        r = ref[start : start + _BLOCK_ROWS].astype(np.float64)
        c = cand[start : start + _BLOCK_ROWS].astype(np.float64)
        stop = start + len(r)
        row_max_diff[start:stop] = np.abs(r - c).max(axis=1)
        kld[start:stop] = token_kld(log_softmax(r), log_softmax(c))
        total += float(r.sum())
        total_sq += float((r * r).sum())
    n_values = ref.size
    mean = total / n_values
    agree = ref.argmax(axis=1) == cand.argmax(axis=1)
    top2 = np.partition(ref, -2, axis=1)[:, -2:].astype(np.float64)
    confident = (top2[:, 1] - top2[:, 0]) > gap
    return ParityStats(
        n_positions=n_rows,
        logit_std=math.sqrt(max(total_sq / n_values - mean * mean, 0.0)),
        max_abs_dlogit=float(row_max_diff.max()),
        mean_max_abs_dlogit=float(row_max_diff.mean()),
        mean_kld=float(kld.mean()),
        top1_agreement=float(agree.mean()),
        confident_top1_agreement=float(agree[confident].mean()) if confident.any() else math.nan,
        n_confident=int(confident.sum()),
        gap=float(gap),
    )
