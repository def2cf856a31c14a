"""llama-perplexity's scalar formulas, checked against hand values and direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.core.stats import (
    covariance_of_means,
    mean_and_uncertainty,
    median,
    order_statistics,
    percentile,
    perplexity_from_nll,
)


def test_percentile_interpolates_between_neighbours():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    # p = 0.9 * (5 - 1) = 3.6 -> 0.4 * v[3] + 0.6 * v[4]
    assert percentile(values, 0.9) == pytest.approx(4.6, abs=1e-6)
    # p = 0.25 * 4 = 1.0 -> exactly v[1]
    assert percentile(values, 0.25) == pytest.approx(2.0, abs=1e-6)
    assert percentile([0.0, 10.0], 0.999) == pytest.approx(9.99, abs=1e-5)


def test_percentile_ends_are_min_and_max():
    values = [-3.0, 0.5, 7.0]
    assert percentile(values, 0.0) == -3.0
    assert percentile(values, 1.0) == 7.0


def test_median_averages_the_middle_pair_when_even():
    assert median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert median([1.0, 2.0, 9.0]) == 2.0


def test_order_statistics_sorts_before_picking():
    stats = order_statistics([5.0, 1.0, 4.0, 2.0, 3.0], (("max", 1.0), ("median", 0.5), ("min", 0.0), ("90", 0.9)))
    assert stats == {"max": 5.0, "median": 3.0, "min": 1.0, "90": pytest.approx(4.6, abs=1e-6)}


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValidationError):
        percentile([], 0.5)


def test_mean_and_uncertainty_matches_the_standard_error():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=57)
    estimate = mean_and_uncertainty(float(x.sum()), float((x * x).sum()), len(x))
    assert estimate.value == pytest.approx(x.mean(), rel=1e-12)
    # population variance over N - 1, as the C++ code divides
    assert estimate.uncertainty == pytest.approx(x.std() / math.sqrt(len(x) - 1), rel=1e-9)


def test_uncertainty_is_zero_up_to_ten_tokens():
    x = np.arange(10, dtype=float)
    assert mean_and_uncertainty(x.sum(), (x * x).sum(), 10).uncertainty == 0.0
    x = np.arange(11, dtype=float)
    assert mean_and_uncertainty(x.sum(), (x * x).sum(), 11).uncertainty > 0.0


def test_covariance_of_means_matches_numpy_and_needs_ten_tokens():
    rng = np.random.default_rng(4)
    a = rng.normal(size=40)
    b = 0.5 * a + rng.normal(size=40)
    expected = np.cov(a, b, bias=True)[0, 1] / (len(a) - 1)
    got = covariance_of_means(a.sum(), b.sum(), (a * b).sum(), len(a))
    assert got == pytest.approx(expected, rel=1e-9)
    assert covariance_of_means(a[:9].sum(), b[:9].sum(), (a[:9] * b[:9]).sum(), 9) == 0.0


def test_perplexity_and_its_uncertainty():
    nll = np.array([1.0, 2.0, 3.0, 2.0])
    estimate = perplexity_from_nll(nll.sum(), (nll * nll).sum(), len(nll))
    assert estimate.value == pytest.approx(math.exp(2.0))
    # var = 0.5, SE = sqrt(0.5 / 3); no N > 10 guard in the default mode
    assert estimate.uncertainty == pytest.approx(math.exp(2.0) * math.sqrt(0.5 / 3))


def test_perplexity_of_no_tokens_is_an_error():
    with pytest.raises(ValidationError):
        perplexity_from_nll(0.0, 0.0, 0)
