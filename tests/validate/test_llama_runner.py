"""Reading logits out of llama-cpp-python, on a tiny llama-architecture GGUF (conftest)."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.core.errors import GGUFFileError, ValidationError
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner, tokenize_with_llama

from .conftest import BOS_ID

N_CTX = 24


@pytest.fixture(scope="module")
def runner(tiny_llama_gguf):
    with LlamaCppRunner(tiny_llama_gguf.path, n_ctx=N_CTX, n_threads=1) as llama:
        yield llama


def _windows(n_vocab: int, count: int = 2, length: int = N_CTX, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, n_vocab, length) for _ in range(count)]


def test_one_float32_row_per_token(runner, tiny_llama_gguf):
    logits = list(runner.iter_window_logits(_windows(tiny_llama_gguf.n_vocab)))
    assert len(logits) == 2
    assert logits[0].shape == (N_CTX, tiny_llama_gguf.n_vocab)
    assert logits[0].dtype == np.float32
    assert runner.n_vocab == tiny_llama_gguf.n_vocab
    assert not np.array_equal(logits[0], logits[1])


def test_row_i_is_the_prediction_after_token_i(runner, tiny_llama_gguf):
    (window,) = _windows(tiny_llama_gguf.n_vocab, count=1)
    changed = window.copy()
    changed[10] = (changed[10] + 1 - 3) % (tiny_llama_gguf.n_vocab - 3) + 3
    a, b = runner.iter_window_logits([window, changed])
    np.testing.assert_array_equal(a[:10], b[:10])  # rows before the change cannot see it
    assert not np.allclose(a[10], b[10])  # row 10 has consumed the changed token
    (prefix,) = runner.iter_window_logits([window[:12]])
    np.testing.assert_allclose(prefix, a[:12], rtol=0, atol=1e-5)


def test_each_window_starts_from_an_empty_cache(runner, tiny_llama_gguf):
    first, second = _windows(tiny_llama_gguf.n_vocab, seed=1)
    _, after_first = runner.iter_window_logits([first, second])
    (alone,) = runner.iter_window_logits([second])
    np.testing.assert_array_equal(after_first, alone)


def test_first_row_returns_the_tail(runner, tiny_llama_gguf):
    windows = _windows(tiny_llama_gguf.n_vocab, seed=2)
    full = list(runner.iter_window_logits(windows))
    tails = list(runner.iter_window_logits(windows, first_row=N_CTX // 2))
    for whole, tail in zip(full, tails):
        np.testing.assert_array_equal(whole[N_CTX // 2 :], tail)


def test_progress_is_reported_per_window(runner, tiny_llama_gguf):
    seen = []
    list(runner.iter_window_logits(_windows(tiny_llama_gguf.n_vocab, count=3),
                                   on_progress=lambda done, total: seen.append((done, total))))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_bos_and_settings(runner):
    assert runner.bos_id == BOS_ID
    assert runner.settings["kv_cache"] == "f16"


def test_f32_kv_cache_option(tiny_llama_gguf, runner):
    windows = _windows(tiny_llama_gguf.n_vocab, count=1, seed=3)
    with LlamaCppRunner(tiny_llama_gguf.path, n_ctx=N_CTX, n_threads=1, kv_cache_f32=True) as f32:
        assert f32.settings["kv_cache"] == "f32"
        (exact,) = f32.iter_window_logits(windows)
    (rounded,) = runner.iter_window_logits(windows)
    assert 0 < np.abs(exact - rounded).max() < 0.05  # F16 K/V rounding is visible but small


def test_window_longer_than_the_context_is_refused(runner, tiny_llama_gguf):
    (too_long,) = _windows(tiny_llama_gguf.n_vocab, count=1, length=N_CTX + 1)
    with pytest.raises(ValidationError, match="exceeds n_ctx"):
        list(runner.iter_window_logits([too_long]))


def test_unloadable_files(tmp_path):
    with pytest.raises(GGUFFileError, match="does not exist"):
        LlamaCppRunner(tmp_path / "missing.gguf", n_ctx=8)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(GGUFFileError, match="cannot load"):
        LlamaCppRunner(garbage, n_ctx=8)
    with pytest.raises(GGUFFileError):
        tokenize_with_llama(garbage, "hello")


def test_tokenize_with_the_gguf_vocabulary(tiny_llama_gguf):
    hello = tiny_llama_gguf.hello_id
    assert tokenize_with_llama(tiny_llama_gguf.path, "hello") == [BOS_ID, hello]
    assert tokenize_with_llama(tiny_llama_gguf.path, "hello", add_bos=False) == [hello]
    # "<s>" is parsed as the BOS control token only when special tokens are enabled
    assert tokenize_with_llama(tiny_llama_gguf.path, "<s>", add_bos=False, special=True) == [BOS_ID]
    assert BOS_ID not in tokenize_with_llama(tiny_llama_gguf.path, "<s>", add_bos=False)
