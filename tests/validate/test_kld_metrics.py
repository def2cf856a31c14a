"""KLD-mode statistics on constructed distributions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.validate.metrics.kld import KLD_PERCENTILES, KLDAccumulator, PerplexityAccumulator, percentile


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """Independent re-implementation for expected values."""
    x = x.astype(np.float64)
    out = np.empty_like(x)
    for i, row in enumerate(x):
        top = row.max()
        out[i] = row - top - math.log(sum(math.exp(v - top) for v in row))
    return out


def _random_case(n_rows: int, n_vocab: int = 40, seed: int = 0, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 2, (n_rows, n_vocab)).astype(np.float32)
    cand = (ref + rng.normal(0, noise, ref.shape)).astype(np.float32)
    targets = rng.integers(0, n_vocab, n_rows)
    return ref, cand, targets


def _stats(ref, cand, targets, **kwargs):
    acc = KLDAccumulator(**kwargs)
    acc.add(ref, cand, targets)
    return acc.finish()


def test_identical_distributions_have_zero_divergence():
    ref, _, targets = _random_case(30)
    stats = _stats(ref, ref.copy(), targets)
    assert stats.kld_mean.value == pytest.approx(0.0, abs=1e-12)
    assert stats.kld_percentiles["max"] == pytest.approx(0.0, abs=1e-12)
    assert stats.same_top1.value == 1.0
    assert stats.delta_p_mean.value == pytest.approx(0.0, abs=1e-12)
    assert stats.delta_p_rms.value == pytest.approx(0.0, abs=1e-12)
    assert stats.ppl_ratio.value == pytest.approx(1.0, abs=1e-12)


def test_two_token_case_by_hand():
    # p = (1/2, 1/2), q = (3/4, 1/4), the correct token is 0
    ref = np.array([[0.0, 0.0]], dtype=np.float32)
    cand = np.array([[math.log(3.0), 0.0]], dtype=np.float32)
    stats = _stats(ref, cand, [0])
    kld = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # = 0.5 ln(4/3)
    assert stats.kld_mean.value == pytest.approx(kld, rel=1e-6)
    assert stats.ppl_candidate.value == pytest.approx(1 / 0.75, rel=1e-6)
    assert stats.ppl_reference.value == pytest.approx(2.0, rel=1e-6)
    assert stats.ln_ppl_ratio.value == pytest.approx(math.log(0.5 / 0.75), rel=1e-6)
    assert stats.delta_p_mean.value == pytest.approx(0.25, rel=1e-6)
    # a tie in the reference resolves to the first token, as in the C++ loop
    assert stats.same_top1.value == 1.0


def test_divergence_is_reference_weighted():
    # KL(p || q), not KL(q || p): swap the roles and the value changes
    p = np.array([[0.0, 0.0]], dtype=np.float32)
    q = np.array([[math.log(3.0), 0.0]], dtype=np.float32)
    swapped = _stats(q, p, [0]).kld_mean.value
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert swapped == pytest.approx(expected, rel=1e-6)


def test_entries_below_minus_16_are_left_out_by_default():
    n_tail = 1000
    ref = np.array([[0.0] + [-20.0] * n_tail], dtype=np.float32)
    cand = np.array([[0.0] + [-10.0] * n_tail], dtype=np.float32)
    log_p = _log_softmax(ref)[0]
    log_q = _log_softmax(cand)[0]
    head_only = math.exp(log_p[0]) * (log_p[0] - log_q[0])
    everything = float(np.sum(np.exp(log_p) * (log_p - log_q)))
    assert abs(everything - head_only) > 1e-6  # the case really separates the two sums
    assert _stats(ref, cand, [0]).kld_mean.value == pytest.approx(head_only, rel=1e-9)
    full = _stats(ref, cand, [0], log_prob_floor=None).kld_mean.value
    assert full == pytest.approx(everything, rel=1e-9)


def test_per_token_values_and_uncertainties_match_direct_computation():
    ref, cand, targets = _random_case(150, seed=1)
    stats = _stats(ref, cand, targets)
    n = len(targets)
    log_p, log_q = _log_softmax(ref), _log_softmax(cand)
    rows = np.arange(n)
    nll_q, nll_p = -log_q[rows, targets], -log_p[rows, targets]
    kld = np.where(log_p > -16, np.exp(log_p) * (log_p - log_q), 0.0).sum(axis=1)
    dp = np.exp(-nll_q) - np.exp(-nll_p)
    same = (cand.argmax(axis=1) == ref.argmax(axis=1)).mean()
    se = lambda x: x.std() / math.sqrt(n - 1)  # noqa: E731

    assert stats.n_tokens == n
    assert stats.kld_mean.value == pytest.approx(kld.mean(), rel=1e-9)
    assert stats.kld_mean.uncertainty == pytest.approx(se(kld), rel=1e-6)
    assert stats.ppl_candidate.value == pytest.approx(math.exp(nll_q.mean()), rel=1e-9)
    assert stats.ppl_candidate.uncertainty == pytest.approx(math.exp(nll_q.mean()) * se(nll_q), rel=1e-6)
    assert stats.ppl_reference.value == pytest.approx(math.exp(nll_p.mean()), rel=1e-9)
    # the covariance-aware error of ln(PPL(Q)/PPL(ref)) is the SE of the per-token difference
    assert stats.ln_ppl_ratio.value == pytest.approx(nll_q.mean() - nll_p.mean(), rel=1e-9)
    assert stats.ln_ppl_ratio.uncertainty == pytest.approx(se(nll_q - nll_p), rel=1e-6)
    ratio = math.exp(nll_q.mean() - nll_p.mean())
    assert stats.ppl_ratio.value == pytest.approx(ratio, rel=1e-9)
    assert stats.ppl_ratio.uncertainty == pytest.approx(ratio * se(nll_q - nll_p), rel=1e-6)
    assert stats.nll_correlation == pytest.approx(np.corrcoef(nll_q, nll_p)[0, 1], rel=1e-6)
    ppl_q, ppl_p = math.exp(nll_q.mean()), math.exp(nll_p.mean())
    cov = np.cov(nll_q, nll_p, bias=True)[0, 1] / (n - 1)
    diff_var = (ppl_q * se(nll_q)) ** 2 + (ppl_p * se(nll_p)) ** 2 - 2 * ppl_q * ppl_p * cov
    assert stats.ppl_difference.value == pytest.approx(ppl_q - ppl_p, rel=1e-9)
    assert stats.ppl_difference.uncertainty == pytest.approx(math.sqrt(diff_var), rel=1e-6)
    assert stats.delta_p_mean.value == pytest.approx(dp.mean(), rel=1e-9)
    assert stats.delta_p_mean.uncertainty == pytest.approx(se(dp), rel=1e-6)
    rms = math.sqrt((dp**2).mean())
    assert stats.delta_p_rms.value == pytest.approx(rms, rel=1e-9)
    assert stats.delta_p_rms.uncertainty == pytest.approx(0.5 / rms * se(dp**2), rel=1e-6)
    assert stats.same_top1.value == pytest.approx(same)
    assert stats.same_top1.uncertainty == pytest.approx(math.sqrt(same * (1 - same) / (n - 1)))
    ordered = np.sort(kld.astype(np.float32))
    assert stats.kld_percentiles["99"] == pytest.approx(percentile(ordered, 0.99), rel=1e-5)
    assert stats.kld_percentiles["max"] == pytest.approx(ordered[-1], rel=1e-5)
    assert stats.delta_p_percentiles["min"] == pytest.approx(dp.min(), rel=1e-5, abs=1e-7)
    assert stats.enough_tokens


def test_percentile_names_follow_llama_perplexity():
    ref, cand, targets = _random_case(20)
    stats = _stats(ref, cand, targets)
    assert list(stats.kld_percentiles) == [name for name, _ in KLD_PERCENTILES]
    assert list(stats.delta_p_percentiles)[:7] == ["max", "99.9", "99", "95", "90", "75", "median"]
    assert not stats.enough_tokens  # 20 < 100: llama-perplexity would not print them


def test_accumulating_windows_equals_one_pass():
    ref, cand, targets = _random_case(97, seed=2)
    whole = _stats(ref, cand, targets).to_dict()
    acc = KLDAccumulator()
    for rows in (slice(0, 40), slice(40, 41), slice(41, 97)):
        acc.add(ref[rows], cand[rows], targets[rows])
    windowed = acc.finish().to_dict()
    assert windowed.keys() == whole.keys()
    np.testing.assert_allclose(_flatten(windowed), _flatten(whole), rtol=1e-10, atol=1e-15)


def test_finish_leaves_the_accumulator_usable():
    ref, cand, targets = _random_case(30, seed=5)
    acc = KLDAccumulator()
    acc.add(ref[:15], cand[:15], targets[:15])
    first = acc.finish().kld_mean.value
    acc.add(ref[15:], cand[15:], targets[15:])
    assert acc.finish().n_tokens == 30
    assert acc.finish().kld_mean.value != first


def test_to_dict_is_valid_json_even_with_undefined_correlation():
    import json

    ref = np.zeros((3, 4), dtype=np.float32)
    stats = _stats(ref, ref.copy(), [0, 1, 2])
    text = json.dumps(stats.to_dict(), allow_nan=False)
    assert json.loads(text)["nll_correlation"] is None


def test_vocabulary_mismatch_is_refused_with_a_reason():
    ref = np.zeros((2, 8), dtype=np.float32)
    cand = np.zeros((2, 6), dtype=np.float32)
    with pytest.raises(ValidationError, match="vocabulary sizes differ: reference 8, candidate 6"):
        KLDAccumulator().add(ref, cand, [0, 1])


def test_rows_and_targets_must_agree():
    ref = np.zeros((3, 8), dtype=np.float32)
    with pytest.raises(ValidationError, match="2 target tokens for 3 logit rows"):
        KLDAccumulator().add(ref, ref, [0, 1])
    with pytest.raises(ValidationError, match="outside a vocabulary of 8"):
        KLDAccumulator().add(ref, ref, [0, 1, 8])


def test_no_tokens_is_an_error():
    with pytest.raises(ValidationError):
        KLDAccumulator().finish()


def test_perplexity_accumulator_over_windows():
    ref, _, targets = _random_case(50, seed=6)
    acc = PerplexityAccumulator()
    acc.add(ref[:20], targets[:20])
    acc.add(ref[20:], targets[20:])
    nll = -_log_softmax(ref)[np.arange(50), targets]
    estimate = acc.finish()
    assert estimate.value == pytest.approx(math.exp(nll.mean()), rel=1e-9)
    assert estimate.uncertainty == pytest.approx(
        math.exp(nll.mean()) * nll.std() / math.sqrt(49), rel=1e-6
    )


def _flatten(data) -> list[float]:
    if isinstance(data, dict):
        return [v for item in data.values() for v in _flatten(item)]
    return [float("nan") if data is None else float(data)]
