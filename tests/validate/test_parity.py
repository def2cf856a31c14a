"""Converter parity statistics on constructed logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.validate.metrics.kld import parity_stats


def test_identical_logits_are_in_perfect_parity():
    ref = np.random.default_rng(0).normal(0, 4, (12, 50)).astype(np.float32)
    stats = parity_stats(ref, ref.copy())
    assert stats.max_abs_dlogit == 0.0
    assert stats.mean_kld == pytest.approx(0.0, abs=1e-12)
    assert stats.top1_agreement == 1.0


def test_differences_and_scale():
    ref = np.random.default_rng(1).normal(0, 4, (10, 30)).astype(np.float32)
    cand = ref.copy()
    cand[3, 7] += 0.5
    cand[6, 2] -= 0.2
    stats = parity_stats(ref, cand)
    assert stats.max_abs_dlogit == pytest.approx(0.5, abs=1e-5)
    assert stats.mean_max_abs_dlogit == pytest.approx((0.5 + 0.2) / 10, abs=1e-5)
    assert stats.logit_std == pytest.approx(float(np.std(ref.astype(np.float64))), rel=1e-9)
    assert stats.max_abs_dlogit_rel == pytest.approx(0.5 / stats.logit_std, rel=1e-4)


def test_mean_kld_by_hand():
    ref = np.array([[0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    cand = np.array([[math.log(3.0), 0.0], [0.0, 0.0]], dtype=np.float32)
    stats = parity_stats(ref, cand)
    assert stats.mean_kld == pytest.approx(0.5 * math.log(4 / 3) / 2, rel=1e-6)


def test_near_ties_do_not_count_against_confident_agreement():
    ref = np.array([[5.0, 4.95, 0.0], [5.0, 3.0, 0.0], [0.0, 2.0, 6.0]], dtype=np.float32)
    cand = np.array([[4.9, 5.0, 0.0], [5.0, 3.0, 0.0], [0.0, 2.0, 6.0]], dtype=np.float32)
    stats = parity_stats(ref, cand, gap=0.1)
    assert stats.top1_agreement == pytest.approx(2 / 3)
    assert stats.n_confident == 2
    assert stats.confident_top1_agreement == 1.0
    flipped = cand.copy()
    flipped[1] = [3.0, 5.0, 0.0]
    assert parity_stats(ref, flipped, gap=0.1).confident_top1_agreement == pytest.approx(0.5)


def test_no_confident_position_gives_nan_and_json_null():
    ref = np.zeros((2, 3), dtype=np.float32)
    stats = parity_stats(ref, ref)
    assert math.isnan(stats.confident_top1_agreement)
    assert stats.to_dict()["confident_top1_agreement"] is None


def test_shapes_must_match():
    with pytest.raises(ValidationError, match="shapes differ"):
        parity_stats(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))
