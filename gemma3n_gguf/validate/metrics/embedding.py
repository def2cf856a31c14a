"""Per-token agreement of two embedding matrices (image or audio soft tokens against the reference)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.core.stats import jsonable


@dataclass(frozen=True)
class EmbeddingParity:
    """Per-token agreement of two (tokens, width) embedding matrices."""

    n_tokens: int
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    reference_std: float
    per_token_cosine: NDArray[np.float64] = field(repr=False, compare=False)
    per_token_max_abs_diff: NDArray[np.float64] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("per_token")}
        return jsonable(data)


def embedding_parity(reference: NDArray[np.floating], candidate: NDArray[np.floating]) -> EmbeddingParity:
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape or ref.ndim != 2 or not len(ref):
        raise ValidationError(f"embedding shapes differ or are empty: reference {ref.shape}, candidate {cand.shape}")
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = (ref * cand).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)
    diff = np.abs(ref - cand).max(axis=1)
    return EmbeddingParity(len(ref), float(cosine.min()), float(cosine.mean()), float(diff.max()),
                           float(ref.std()), cosine, diff)
