"""Scalar formulas of llama-perplexity, plus the numeric helpers the metrics share.

Mirrors the lambdas of ``kl_divergence()`` in ``tools/perplexity/perplexity.cpp`` (llama.cpp
vendored by llama-cpp-python 0.3.36): ``mean_and_uncertainty``, ``covariance`` and
``percentile``, and the ``Final estimate`` line of ``perplexity()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import ValidationError


@dataclass(frozen=True)
class Estimate:
    """A value with its standard uncertainty, as llama-perplexity prints ``X ± U``."""

    value: float
    uncertainty: float

    def to_dict(self) -> dict[str, float | None]:
        return {"value": json_float(self.value), "uncertainty": json_float(self.uncertainty)}


def mean_and_uncertainty(total: float, total_sq: float, count: int) -> Estimate:
    """Mean and its standard error from running sums; the error is 0 for N <= 10."""
    if count < 1:
        return Estimate(0.0, 0.0)
    mean = total / count
    variance = total_sq / count - mean * mean
    error = math.sqrt(variance / (count - 1)) if variance > 0 and count > 10 else 0.0
    return Estimate(mean, error)


def covariance_of_means(sum_a: float, sum_b: float, sum_ab: float, count: int) -> float:
    """Covariance of two sample means: cov(a, b) / (N - 1), and 0 for N < 10."""
    if count < 10:
        return 0.0
    return (sum_ab / count - (sum_a / count) * (sum_b / count)) / (count - 1)


def perplexity_from_nll(total_nll: float, total_nll_sq: float, count: int) -> Estimate:
    """``Final estimate: PPL = X +/- U`` of llama-perplexity's default mode.

    X = exp(mean NLL), U = X * sqrt(var(NLL) / (N - 1)). Unlike the KLD mode this has no
    N > 10 guard; U is 0 when undefined.
    """
    if count < 1:
        raise ValidationError("perplexity needs at least one scored token")
    mean = total_nll / count
    ppl = math.exp(mean)
    variance = total_nll_sq / count - mean * mean
    error = math.sqrt(variance / (count - 1)) if variance > 0 and count > 1 else 0.0
    return Estimate(ppl, ppl * error)


def percentile(sorted_values: ArrayLike, fraction: float) -> float:
    """Linear interpolation on ascending values, in float32 like the C++ lambda.

    p = fraction * (N - 1); result = (1 - frac(p)) * v[floor(p)] + frac(p) * v[floor(p) + 1].
    """
    values = np.asarray(sorted_values, dtype=np.float32)
    if values.size == 0:
        raise ValidationError("percentile of an empty set")
    if fraction <= 0:
        return float(values[0])
    if fraction >= 1:
        return float(values[-1])
    position = np.float32(fraction) * np.float32(values.size - 1)
    index = int(position)
    weight = position - np.float32(index)
    upper = values[min(index + 1, values.size - 1)]
    return float((np.float32(1) - weight) * values[index] + weight * upper)


def median(sorted_values: ArrayLike) -> float:
    """Median as llama-perplexity computes it (mean of the two middle values when N is even)."""
    values = np.asarray(sorted_values, dtype=np.float32)
    if values.size == 0:
        raise ValidationError("median of an empty set")
    middle = values.size // 2
    if values.size % 2 == 0:
        return float(np.float32(0.5) * (values[middle] + values[middle - 1]))
    return float(values[middle])


def order_statistics(
    values: ArrayLike, levels: tuple[tuple[str, float], ...]
) -> dict[str, float]:
    """Named percentiles of unsorted ``values``; ``"median"`` uses :func:`median`."""
    ordered = np.sort(np.asarray(values, dtype=np.float32))
    return {
        name: median(ordered) if name == "median" else percentile(ordered, fraction)
        for name, fraction in levels
    }


def log_softmax(logits: ArrayLike) -> NDArray[np.float64]:
    """Row-wise log-softmax in float64 (a new array)."""
    x = np.array(logits, dtype=np.float64)
    x -= x.max(axis=-1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=-1, keepdims=True))
    return x


def token_kld(ref_lp: NDArray[np.float64], cand_lp: NDArray[np.float64],
              log_prob_floor: float | None = None) -> NDArray[np.float64]:
    """KL(p_ref || p_cand) per row, the one definition every KLD figure is built from.

    ``sum p_ref * (log p_ref - log p_cand)``; llama-perplexity leaves out the entries whose
    log p_ref is at or below ``log_prob_floor``. ``ref_lp`` is overwritten (no vocab-sized copy).
    """
    terms = ref_lp - cand_lp
    ignored = ref_lp <= log_prob_floor if log_prob_floor is not None else None
    terms *= np.exp(ref_lp, out=ref_lp)
    if ignored is not None:
        terms[ignored] = 0.0
    return terms.sum(axis=1)


def as_logit_matrix(values: ArrayLike, what: str) -> NDArray[np.floating]:
    """``values`` as a float matrix (n_positions, n_vocab), without copying."""
    matrix = np.asarray(values)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise ValidationError(
            f"{what} must be a float matrix (n_positions, n_vocab), "
            f"got {matrix.dtype} {matrix.shape}"
        )
    return matrix


def as_target_ids(targets: ArrayLike, n_rows: int, n_vocab: int) -> NDArray[np.int64]:
    """Target token ids, one per logit row, each inside the vocabulary."""
    ids = np.asarray(targets).astype(np.int64, copy=False).reshape(-1)
    if len(ids) != n_rows:
        raise ValidationError(f"{len(ids)} target tokens for {n_rows} logit rows")
    if len(ids) and (ids.min() < 0 or ids.max() >= n_vocab):
        bad = int(ids.max()) if ids.max() >= n_vocab else int(ids.min())
        raise ValidationError(f"target token id {bad} outside a vocabulary of {n_vocab}")
    return ids


def safe_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator != 0 else math.nan


def sqrt_or_zero(value: float) -> float:
    return math.sqrt(value) if value > 0 else 0.0


def json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """Nested dicts/lists with non-finite floats replaced by ``None`` (valid JSON)."""
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, float):
        return json_float(value)
    return value
