"""Perplexity, KL divergence and parity statistics with llama-perplexity's definitions.

Every formula mirrors ``tools/perplexity/perplexity.cpp`` of the llama.cpp vendored by
llama-cpp-python 0.3.36 (``kl_divergence()`` and ``perplexity()``): the KLD sum keeps only
vocabulary entries whose reference log-prob is above -16, uncertainties are
``sqrt(var / (N - 1))`` and drop to 0 for N <= 10, percentiles interpolate linearly on the
sorted float32 values exactly as the C++ lambda does.

Deliberate differences, both towards exactness (our reference is transformers, not a uint16
base file): the reference's log-prob of the correct token and its top-1 token come from its
exact logits (the base file floors log-probs below max-16 and can tie after rounding), and
all arithmetic is float64 where the C++ code mixes float and double.

Logit matrices of Gemma's 262,400-token vocabulary are large, so everything is fed window by
window and processed in blocks of rows; only per-token scalars are kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.validate.metrics.parity import ParityStats, parity_stats
from gemma3n_gguf.core.stats import (
    Estimate,
    as_logit_matrix,
    as_target_ids,
    covariance_of_means,
    jsonable,
    log_softmax,
    mean_and_uncertainty,
    order_statistics,
    percentile,
    perplexity_from_nll,
    safe_ratio,
    sqrt_or_zero,
    token_kld,
)
from gemma3n_gguf.core.llama_facts import LOG_PROB_FLOOR

__all__ = [
    "DELTA_P_PERCENTILES", "KLD_PERCENTILES", "LOG_PROB_FLOOR", "MIN_TOKENS_FOR_STATISTICS",
    "Estimate", "ExactReference", "KLDAccumulator", "KLDStats", "ParityStats",
    "PerplexityAccumulator", "ReferenceRows", "log_softmax", "mean_and_uncertainty", "token_kld",
    "parity_stats", "percentile", "perplexity_from_nll",
]

MIN_TOKENS_FOR_STATISTICS = 100
"""llama-perplexity prints its final statistics only from this many scored tokens on."""

KLD_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("max", 1.0), ("99.9", 0.999), ("99", 0.99), ("95", 0.95), ("90", 0.90), ("median", 0.5),
    ("10", 0.10), ("5", 0.05), ("1", 0.01), ("0.1", 0.001), ("min", 0.0),
)
DELTA_P_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("max", 1.0), ("99.9", 0.999), ("99", 0.99), ("95", 0.95), ("90", 0.90), ("75", 0.75),
    ("median", 0.5), ("25", 0.25), ("10", 0.10), ("5", 0.05), ("1", 0.01), ("0.1", 0.001),
    ("min", 0.0),
)

_BLOCK_ROWS = 16  # rows per numpy block: 16 x 262400 float64 = 34 MB per temporary


# ---------------------------------------------------------------------------------------------
# The reference's rows


class ReferenceRows(Protocol):
    """The reference's scored rows of one window: exact logits or a compact cached form."""

    @property
    def n_vocab(self) -> int: ...

    @property
    def target_logprob(self) -> NDArray[np.float64]:
        """Exact log p_ref of the correct next token, per row."""

    @property
    def top1(self) -> NDArray[np.int64]:
        """The reference's most likely token (first one on ties), per row."""

    def __len__(self) -> int: ...

    def logprobs(self, start: int, stop: int) -> NDArray[np.float64]:
        """log p_ref for rows ``start:stop`` (possibly rounded, as in a cache)."""

    def kld_bias(self, start: int, stop: int, log_prob_floor: float | None) -> NDArray[np.float64]:
        """Per row, what rounded log-probs add to the KLD sum at first order (0 when exact)."""


class ExactReference:
    """:class:`ReferenceRows` over an in-memory logit matrix (n_rows, n_vocab)."""

    def __init__(self, logits: ArrayLike, targets: ArrayLike) -> None:
        self._logits = as_logit_matrix(logits, "reference logits")
        n_rows = self._logits.shape[0]
        target_ids = as_target_ids(targets, n_rows, self._logits.shape[1])
        self._log_norm = np.empty(n_rows, dtype=np.float64)
        for start in range(0, n_rows, _BLOCK_ROWS):
            block = self._logits[start : start + _BLOCK_ROWS].astype(np.float64)
            peak = block.max(axis=1)
            sums = np.exp(block - peak[:, None]).sum(axis=1)
            self._log_norm[start : start + len(block)] = peak + np.log(sums)
        rows = np.arange(n_rows)
        self._target_logprob = self._logits[rows, target_ids].astype(np.float64) - self._log_norm
        self._top1 = self._logits.argmax(axis=1).astype(np.int64)

    @property
    def n_vocab(self) -> int:
        return int(self._logits.shape[1])

    @property
    def target_logprob(self) -> NDArray[np.float64]:
        return self._target_logprob

    @property
    def top1(self) -> NDArray[np.int64]:
        return self._top1

    def __len__(self) -> int:
        return int(self._logits.shape[0])

    def logprobs(self, start: int, stop: int) -> NDArray[np.float64]:
        return self._logits[start:stop].astype(np.float64) - self._log_norm[start:stop, None]

    def kld_bias(self, start: int, stop: int, log_prob_floor: float | None) -> NDArray[np.float64]:
        return np.zeros(min(stop, len(self)) - start)


# ---------------------------------------------------------------------------------------------
# KLD mode


@dataclass(frozen=True)
class KLDStats:
    """Every statistic of llama-perplexity's KLD mode. Probabilities are fractions, not %."""

    n_tokens: int
    ppl_candidate: Estimate
    ppl_reference: Estimate
    nll_correlation: float
    """Cor(ln PPL(Q), ln PPL(base)): Pearson correlation of per-token NLLs (NaN if undefined)."""
    ln_ppl_ratio: Estimate
    ppl_ratio: Estimate
    ppl_difference: Estimate
    kld_mean: Estimate
    kld_percentiles: dict[str, float]
    delta_p_mean: Estimate
    delta_p_percentiles: dict[str, float]
    delta_p_rms: Estimate
    same_top1: Estimate

    @property
    def enough_tokens(self) -> bool:
        """Whether llama-perplexity would print these statistics (N >= 100)."""
        return self.n_tokens >= MIN_TOKENS_FOR_STATISTICS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``)."""
        return jsonable(asdict(self))


@dataclass
class _RunningSums:
    nll: float = 0.0
    nll_sq: float = 0.0
    nll_ref: float = 0.0
    nll_ref_sq: float = 0.0
    nll_cross: float = 0.0
    kld: float = 0.0
    kld_sq: float = 0.0
    dp: float = 0.0
    dp_sq: float = 0.0
    dp_4th: float = 0.0
    same_top1: int = 0
    count: int = 0


@dataclass
class KLDAccumulator:
    """Accumulates KLD-mode statistics window by window; call :meth:`finish` at any time.

    ``log_prob_floor=None`` sums the KLD over the whole vocabulary instead of llama-perplexity's
    ``log p_ref > -16`` entries.
    """

    log_prob_floor: float | None = LOG_PROB_FLOOR
    _sums: _RunningSums = field(default_factory=_RunningSums, init=False, repr=False)
    _kld_parts: list[NDArray[np.float32]] = field(default_factory=list, init=False, repr=False)
    _dp_parts: list[NDArray[np.float32]] = field(default_factory=list, init=False, repr=False)

    @property
    def n_tokens(self) -> int:
        return self._sums.count

    def kld_values(self) -> NDArray[np.float32]:
        """Per-token KLD of every token added so far, in order."""
        return np.concatenate(self._kld_parts) if self._kld_parts else np.empty(0, np.float32)

    def delta_p_values(self) -> NDArray[np.float32]:
        """Per-token Δp of every token added so far, in order."""
        return np.concatenate(self._dp_parts) if self._dp_parts else np.empty(0, np.float32)

    def add(
        self,
        reference: ArrayLike | ReferenceRows,
        candidate_logits: ArrayLike,
        targets: ArrayLike,
    ) -> None:
        """Score one window's rows. ``reference`` is a logit matrix or :class:`ReferenceRows`.

        Row i of both holds the prediction for ``targets[i]``.
        """
        candidate = as_logit_matrix(candidate_logits, "candidate logits")
        if _is_reference_rows(reference):
            ref = reference
        else:
            _check_same_shape(as_logit_matrix(reference, "reference logits"), candidate)
            ref = ExactReference(reference, targets)
        _check_same_shape(ref, candidate)
        target_ids = as_target_ids(targets, candidate.shape[0], candidate.shape[1])
        for start in range(0, len(target_ids), _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, len(target_ids))
            self._add_block(ref, start, stop, candidate[start:stop], target_ids[start:stop])

    def _add_block(
        self,
        ref: ReferenceRows,
        start: int,
        stop: int,
        candidate: NDArray[np.floating],
        targets: NDArray[np.int64],
    ) -> None:
        cand_lp = log_softmax(candidate)
        nll = -cand_lp[np.arange(stop - start), targets]
        kld = token_kld(ref.logprobs(start, stop), cand_lp, self.log_prob_floor)
        del cand_lp
        kld -= ref.kld_bias(start, stop, self.log_prob_floor)
        nll_ref = -ref.target_logprob[start:stop]
        delta_p = np.exp(-nll) - np.exp(-nll_ref)
        same_top1 = candidate.argmax(axis=1) == ref.top1[start:stop]
        self._accumulate(nll, nll_ref, kld, delta_p, same_top1)

    def _accumulate(
        self,
        nll: NDArray[np.float64],
        nll_ref: NDArray[np.float64],
        kld: NDArray[np.float64],
        delta_p: NDArray[np.float64],
        same_top1: NDArray[np.bool_],
    ) -> None:
        s = self._sums
        s.nll += float(nll.sum())
        s.nll_sq += float((nll * nll).sum())
        s.nll_ref += float(nll_ref.sum())
        s.nll_ref_sq += float((nll_ref * nll_ref).sum())
        s.nll_cross += float((nll * nll_ref).sum())
        s.kld += float(kld.sum())
        s.kld_sq += float((kld * kld).sum())
        dp_sq = delta_p * delta_p
        s.dp += float(delta_p.sum())
        s.dp_sq += float(dp_sq.sum())
        s.dp_4th += float((dp_sq * dp_sq).sum())
        s.same_top1 += int(same_top1.sum())
        s.count += len(nll)
        self._kld_parts.append(kld.astype(np.float32))
        self._dp_parts.append(delta_p.astype(np.float32))

    def finish(self) -> KLDStats:
        """Statistics over every token added so far (the accumulator stays usable)."""
        s = self._sums
        if s.count == 0:
            raise ValidationError("no scored tokens: nothing to compare")
        log_ppl = mean_and_uncertainty(s.nll, s.nll_sq, s.count)
        log_ppl_ref = mean_and_uncertainty(s.nll_ref, s.nll_ref_sq, s.count)
        ppl = math.exp(log_ppl.value)
        ppl_ref = math.exp(log_ppl_ref.value)
        cov = covariance_of_means(s.nll, s.nll_ref, s.nll_cross, s.count)
        ln_ratio = log_ppl.value - log_ppl_ref.value
        ln_ratio_error = sqrt_or_zero(
            log_ppl.uncertainty**2 + log_ppl_ref.uncertainty**2 - 2.0 * cov
        )
        ppl_error = ppl * log_ppl.uncertainty
        ppl_ref_error = ppl_ref * log_ppl_ref.uncertainty
        diff_error = sqrt_or_zero(ppl_error**2 + ppl_ref_error**2 - 2.0 * ppl * ppl_ref * cov)
        dp_mse = mean_and_uncertainty(s.dp_sq, s.dp_4th, s.count)
        rms = math.sqrt(dp_mse.value)
        same = s.same_top1 / s.count
        same_error = math.sqrt(same * (1.0 - same) / (s.count - 1)) if s.count > 1 else 0.0
        return KLDStats(
            n_tokens=s.count,
            ppl_candidate=Estimate(ppl, ppl_error),
            ppl_reference=Estimate(ppl_ref, ppl_ref_error),
            nll_correlation=safe_ratio(cov, log_ppl.uncertainty * log_ppl_ref.uncertainty),
            ln_ppl_ratio=Estimate(ln_ratio, ln_ratio_error),
            ppl_ratio=Estimate(math.exp(ln_ratio), math.exp(ln_ratio) * ln_ratio_error),
            ppl_difference=Estimate(ppl - ppl_ref, diff_error),
            kld_mean=mean_and_uncertainty(s.kld, s.kld_sq, s.count),
            kld_percentiles=order_statistics(self.kld_values(), KLD_PERCENTILES),
            delta_p_mean=mean_and_uncertainty(s.dp, s.dp_sq, s.count),
            delta_p_percentiles=order_statistics(self.delta_p_values(), DELTA_P_PERCENTILES),
            delta_p_rms=Estimate(rms, 0.5 * dp_mse.uncertainty / rms if rms > 0 else 0.0),
            same_top1=Estimate(same, same_error),
        )


@dataclass
class PerplexityAccumulator:
    """Perplexity of one model (llama-perplexity's default mode), fed window by window."""

    _nll: float = field(default=0.0, init=False)
    _nll_sq: float = field(default=0.0, init=False)
    _count: int = field(default=0, init=False)

    def add(self, logits: ArrayLike, targets: ArrayLike) -> None:
        matrix = as_logit_matrix(logits, "logits")
        target_ids = as_target_ids(targets, matrix.shape[0], matrix.shape[1])
        for start in range(0, len(target_ids), _BLOCK_ROWS):
            block = log_softmax(matrix[start : start + _BLOCK_ROWS])
            nll = -block[np.arange(len(block)), target_ids[start : start + _BLOCK_ROWS]]
            self._nll += float(nll.sum())
            self._nll_sq += float((nll * nll).sum())
            self._count += len(nll)

    def finish(self) -> Estimate:
        return perplexity_from_nll(self._nll, self._nll_sq, self._count)


# ---------------------------------------------------------------------------------------------
# Helpers


def _is_reference_rows(value: object) -> bool:
    return hasattr(value, "logprobs") and hasattr(value, "target_logprob")


def _check_same_shape(
    ref: ReferenceRows | NDArray[np.floating], candidate: NDArray[np.floating]
) -> None:
    ref_vocab = ref.shape[1] if isinstance(ref, np.ndarray) else ref.n_vocab
    if ref_vocab != candidate.shape[1]:
        raise ValidationError(
            f"vocabulary sizes differ: reference {ref_vocab}, candidate {candidate.shape[1]} "
            "(a GGUF from another converter? align the vocabularies before comparing)"
        )
    if len(ref) != candidate.shape[0]:
        raise ValidationError(f"reference has {len(ref)} rows, candidate {candidate.shape[0]}")
