"""The reference cache: round trip, exactness of the stored form, keys, atomicity."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.validate.metrics.kld import ExactReference, KLDAccumulator
from gemma3n_gguf.reference.cache import ReferenceCache, quantize_reference, reference_key
from gemma3n_gguf.reference.windows import plan_windows

N_VOCAB = 300
N_CTX = 16
SETTINGS = {"runtime": "transformers", "dtype": "float32"}


def _plan(n_windows: int = 2, seed: int = 0):
    tokens = np.random.default_rng(seed).integers(3, N_VOCAB, n_windows * N_CTX + 5)
    return plan_windows(tokens, N_CTX, bos_id=2)


def _window_logits(plan, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 4, (w.n_scored, N_VOCAB)).astype(np.float32) for w in plan]


def _write(cache: ReferenceCache, key: str, plan, logits) -> list:
    with cache.create(key, plan, N_VOCAB, SETTINGS) as writer:
        return [writer.add_window(rows) for rows in logits]


def test_round_trip_returns_what_was_written(tmp_path):
    plan, cache = _plan(), ReferenceCache(tmp_path)
    logits = _window_logits(plan)
    written = _write(cache, "k" * 64, plan, logits)
    cached = cache.load("k" * 64)
    assert cached is not None
    assert cached.header.n_ctx == N_CTX and cached.header.n_vocab == N_VOCAB
    assert cached.header.n_windows == len(plan) and cached.header.bos_id == 2
    assert cached.header.settings == SETTINGS
    assert _same_plan(cached.plan(), plan)
    read = list(cached.iter_windows())
    assert len(read) == len(written)
    for before, after in zip(written, read):
        np.testing.assert_array_equal(before.quantized, after.quantized)
        for name in ("scale", "min_log_prob", "target_logprob", "top1", "mass_error"):
            np.testing.assert_array_equal(getattr(before, name), getattr(after, name))


def _same_plan(a, b) -> bool:
    return (a.n_ctx, a.bos_id, len(a)) == (b.n_ctx, b.bos_id, len(b)) and all(
        np.array_equal(x.token_ids, y.token_ids) for x, y in zip(a, b)
    )


def test_stored_rows_keep_exact_targets_and_top1():
    plan = _plan(1)
    logits = _window_logits(plan)[0]
    targets = plan.windows[0].targets
    rows = quantize_reference(logits, targets)
    exact = ExactReference(logits, targets)
    np.testing.assert_array_equal(rows.top1, logits.argmax(axis=1))
    np.testing.assert_allclose(rows.target_logprob, exact.target_logprob, rtol=0, atol=1e-12)


def test_rounding_is_half_a_step_above_the_floor_and_floored_below():
    rng = np.random.default_rng(7)
    logits = rng.normal(0, 6, (5, 2000)).astype(np.float32)  # wide: many entries below max-16
    rows = quantize_reference(logits, np.zeros(5, dtype=int))
    exact = ExactReference(logits, np.zeros(5, dtype=int)).logprobs(0, 5)
    approx = rows.logprobs(0, 5)
    kept = logits > (logits.max(axis=1, keepdims=True) - 16)
    step = rows.scale[:, None] * np.ones_like(approx)
    assert (~kept).any() and kept.any()
    assert np.all(np.abs(approx - exact)[kept] <= 0.5 * step[kept] + 1e-9)
    assert np.all(approx[~kept] <= -16.0)
    assert np.all(np.abs(rows.scale - 16.0 / 65535) < 1e-12)


def test_constant_row_does_not_divide_by_zero():
    rows = quantize_reference(np.zeros((1, 10), dtype=np.float32), [3])
    np.testing.assert_allclose(rows.logprobs(0, 1), np.log(0.1), atol=1e-12)


@pytest.mark.slow
def test_kld_error_of_the_cache_format_on_a_full_gemma_vocabulary():
    """The measurement quoted in reference_cache.py, on 262,400-entry rows."""
    n_vocab, n_rows = 262_400, 8
    rng = np.random.default_rng(11)
    targets = rng.integers(0, n_vocab, n_rows)
    for spread, noise, max_error in ((4.0, 0.01, 1e-6), (4.0, 0.1, 2e-5), (1.0, 0.1, 1e-7)):
        ref = rng.normal(0, spread, (n_rows, n_vocab)).astype(np.float32)
        cand = (ref + rng.normal(0, noise, ref.shape)).astype(np.float32)
        per_token = {}
        for name, reference in (("exact", ExactReference(ref, targets)),
                                ("cached", quantize_reference(ref, targets))):
            acc = KLDAccumulator()
            acc.add(reference, cand, targets)
            per_token[name] = acc.kld_values().astype(np.float64)
        error = np.abs(per_token["cached"] - per_token["exact"]).max()
        assert error <= max_error, (spread, noise, error, per_token["exact"].mean())


def test_mass_error_correction_removes_the_first_order_rounding_error():
    rng = np.random.default_rng(12)
    ref = rng.normal(0, 4, (6, 20_000)).astype(np.float32)
    targets = rng.integers(0, 20_000, 6)
    rows = quantize_reference(ref, targets)
    same = KLDAccumulator()
    same.add(rows, ref.copy(), targets)  # candidate identical to the reference: KLD is 0
    corrected = np.abs(same.kld_values()).max()
    uncorrected = np.abs(rows.mass_error).max()  # what the raw rounded rows would add
    assert uncorrected > 1e-6
    assert corrected < uncorrected / 100


def test_cached_rows_refuse_a_different_kld_floor():
    rows = quantize_reference(np.zeros((1, 4), np.float32), [0])
    with pytest.raises(ValidationError, match="exact only above"):
        KLDAccumulator(log_prob_floor=None).add(rows, np.zeros((1, 4), np.float32), [0])


def test_key_depends_on_every_input():
    plan = _plan()
    base = reference_key("ckpt-a", plan, SETTINGS)
    assert base == reference_key("ckpt-a", _plan(), dict(SETTINGS))
    assert base != reference_key("ckpt-b", plan, SETTINGS)
    assert base != reference_key("ckpt-a", _plan(seed=9), SETTINGS)
    assert base != reference_key("ckpt-a", plan, {**SETTINGS, "dtype": "bfloat16"})
    tokens = plan.stream_token_ids
    assert base != reference_key("ckpt-a", plan_windows(tokens, N_CTX * 2, bos_id=2), SETTINGS)
    assert base != reference_key("ckpt-a", plan_windows(tokens, N_CTX, bos_id=None), SETTINGS)


def test_missing_stale_and_foreign_files_are_cache_misses(tmp_path):
    plan, cache = _plan(), ReferenceCache(tmp_path)
    assert cache.load("a" * 64) is None
    _write(cache, "a" * 64, plan, _window_logits(plan))
    assert cache.load("a" * 64) is not None
    # same file name (40-character prefix) but another key inside
    assert cache.load("a" * 40 + "b" * 24) is None
    cache.path_for("c" * 64).write_bytes(b"not a cache file at all")
    assert cache.load("c" * 64) is None


def test_an_interrupted_write_leaves_no_file(tmp_path):
    plan, cache = _plan(), ReferenceCache(tmp_path)
    logits = _window_logits(plan)
    with pytest.raises(RuntimeError):
        with cache.create("d" * 64, plan, N_VOCAB, SETTINGS) as writer:
            writer.add_window(logits[0])
            raise RuntimeError("reference pass crashed")
    with pytest.raises(ValidationError, match="1 of 2 windows"):
        with cache.create("d" * 64, plan, N_VOCAB, SETTINGS) as writer:
            writer.add_window(logits[0])
    assert list(tmp_path.iterdir()) == []


def test_damage_inside_the_rows_is_reported(tmp_path):
    plan, cache = _plan(), ReferenceCache(tmp_path)
    _write(cache, "e" * 64, plan, _window_logits(plan))
    path = cache.path_for("e" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    cached = cache.load("e" * 64)
    assert cached is not None
    with pytest.raises(ValidationError, match="damaged|truncated"):
        list(cached.iter_windows())


def test_wrong_vocabulary_width_is_refused(tmp_path):
    plan, cache = _plan(1), ReferenceCache(tmp_path)
    with pytest.raises(ValidationError, match="expects 300"):
        with cache.create("f" * 64, plan, N_VOCAB, SETTINGS) as writer:
            writer.add_window(np.zeros((plan.windows[0].n_scored, 200), np.float32))


def test_kld_from_the_cache_matches_kld_from_logits(tmp_path):
    plan, cache = _plan(3), ReferenceCache(tmp_path)
    ref_logits = _window_logits(plan, seed=3)
    rng = np.random.default_rng(4)
    cand_logits = [(r + rng.normal(0, 0.2, r.shape)).astype(np.float32) for r in ref_logits]
    _write(cache, "g" * 64, plan, ref_logits)
    direct, from_cache = KLDAccumulator(), KLDAccumulator()
    for window, ref, cand, rows in zip(plan, ref_logits, cand_logits,
                                       cache.load("g" * 64).iter_windows()):
        direct.add(ref, cand, window.targets)
        from_cache.add(rows, cand, window.targets)
    a, b = direct.finish(), from_cache.finish()
    assert b.kld_mean.value == pytest.approx(a.kld_mean.value, rel=1e-3)
    assert b.ppl_reference.value == pytest.approx(a.ppl_reference.value, rel=1e-12)
    assert b.same_top1.value == a.same_top1.value
