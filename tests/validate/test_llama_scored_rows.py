"""LlamaCppRunner asks llama.cpp for the scored rows only (llama-perplexity's batch.logits[i] = pos >= first)
and gets the same logits as evaluating every row with llama-cpp-python's high-level API."""

from __future__ import annotations

import logging

import llama_cpp
import numpy as np
import pytest

from gemma3n_gguf.core.errors import GGUFFileError, ValidationError
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner

N_CTX = 128
THREADS = 1


def _windows(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.concatenate([[2], rng.integers(10, 1024, N_CTX - 1)]) for _ in range(count)]


def _every_row_then_sliced(gguf_path, windows, first_row: int) -> list[np.ndarray]:
    """The independent expectation: Llama(logits_all=True).eval, then the scored rows of ``scores``."""
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=N_CTX, n_batch=N_CTX, n_threads=THREADS,
                          n_threads_batch=THREADS, logits_all=True, verbose=False)
    try:
        rows = []
        for window in windows:
            llm.reset()
            llm.eval(window.tolist())
            rows.append(llm.scores[first_row : len(window)].copy())
        return rows
    finally:
        llm.close()


# N_CTX - 2: the fewest rows still computed by the same matrix-matrix kernel; with a single output row
# ggml's f32 matmul leaves llamafile's sgemm for vec_dot (another summation order, ~3e-6 apart).
@pytest.mark.parametrize("first_row", [0, N_CTX // 2, N_CTX - 2])
@pytest.mark.parametrize("outtype", ["f32", "q8_0"])
def test_scored_rows_equal_every_row_logits_bit_for_bit(outtype, first_row, tiny_text_gguf_factory):
    gguf_path = tiny_text_gguf_factory(outtype)
    windows = _windows()
    expected = _every_row_then_sliced(gguf_path, windows, first_row)
    with LlamaCppRunner(gguf_path, n_ctx=N_CTX, n_threads=THREADS) as runner:
        got = list(runner.iter_window_logits(windows, first_row=first_row))
    assert len(got) == len(expected)
    for rows, reference in zip(got, expected):
        assert rows.dtype == np.float32 and rows.shape == (N_CTX - first_row, runner.n_vocab)
        np.testing.assert_array_equal(rows, reference)


def test_llama_cpp_holds_logits_only_for_the_scored_rows(tiny_text_gguf_factory):
    first_row = N_CTX // 2
    with LlamaCppRunner(tiny_text_gguf_factory("f32"), n_ctx=N_CTX, n_threads=THREADS) as runner:
        (rows,) = runner.iter_window_logits(_windows(count=1), first_row=first_row)
        ctx = runner._ctx  # the context the runner decoded with: what did llama.cpp keep?
        assert not llama_cpp.llama_get_logits_ith(ctx, first_row - 1)  # NULL: row never requested
        first = llama_cpp.llama_get_logits_ith(ctx, first_row)
        last = llama_cpp.llama_get_logits_ith(ctx, N_CTX - 1)
        np.testing.assert_array_equal(np.ctypeslib.as_array(first, shape=(runner.n_vocab,)), rows[0])
        np.testing.assert_array_equal(np.ctypeslib.as_array(last, shape=(runner.n_vocab,)), rows[-1])


@pytest.fixture(scope="module")
def tiny_text_q4_k_m(tiny_text_checkpoint, tmp_path_factory):
    """Q4_K rows: a type the CPU backend repacks on AVX2 (Q8_0 and F32 it does not, here)."""
    from gemma3n_gguf.quantize.onepass import quantize

    return quantize(tiny_text_checkpoint, tmp_path_factory.mktemp("q4km") / "tiny-text-Q4_K_M.gguf",
                    scheme="Q4_K_M").path


def test_repacked_candidate_is_what_llama_cpp_computes_by_default(tiny_text_q4_k_m):
    """The default runner repacks, as llama-cpp-python's Llama (and llama-cli) do: equal bit for bit."""
    windows = _windows(count=2)
    expected = _every_row_then_sliced(tiny_text_q4_k_m, windows, N_CTX // 2)
    with LlamaCppRunner(tiny_text_q4_k_m, n_ctx=N_CTX, n_threads=THREADS) as runner:
        got = list(runner.iter_window_logits(windows, first_row=N_CTX // 2))
        assert runner.settings["weight_repack"] is True
    for rows, reference in zip(got, expected):
        np.testing.assert_array_equal(rows, reference)


def test_no_repack_takes_effect_and_stays_close(tiny_text_q4_k_m):
    """repack=False is llama.cpp's --no-repack path: other kernels for Q4_K, so other logits (the switch
    reaches llama.cpp), but the same model: mean KL divergence between the two paths under 0.01 nats
    (measured 0.0017 on tiny-text), far below what quantizing to Q4_K_M costs it (~0.27 in the sweep)."""
    if "REPACK = 1" not in llama_cpp.llama_print_system_info().decode():
        pytest.skip("this llama.cpp build has no CPU repack kernels: both paths are the same")
    windows = _windows(count=2)
    paths = {}
    for repack in (True, False):
        with LlamaCppRunner(tiny_text_q4_k_m, n_ctx=N_CTX, n_threads=THREADS, repack=repack) as runner:
            paths[repack] = np.concatenate(list(runner.iter_window_logits(windows, first_row=N_CTX // 2)))
    assert not np.array_equal(paths[True], paths[False])
    log_p, log_q = (rows - np.logaddexp.reduce(rows, axis=1, keepdims=True) for rows in (paths[True], paths[False]))
    kld = (np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean()
    assert 0 < kld < 0.01


def test_the_runner_keeps_llama_cpp_quiet_and_refuses_use_after_close(tiny_text_gguf_factory, capfd, tmp_path):
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    runner = LlamaCppRunner(tiny_text_gguf_factory("f32"), n_ctx=N_CTX, n_threads=THREADS)
    windows = runner.iter_window_logits(_windows(count=2), first_row=N_CTX // 2)
    next(windows)
    runner.close()
    assert capfd.readouterr().err == ""  # llama.cpp logs while decoding and freeing, not to the user
    assert logger.level == level  # and the logger is the caller's again
    with pytest.raises(ValidationError, match="closed"):
        next(windows)  # a generator suspended across close
    with pytest.raises(ValidationError, match="closed"):
        list(runner.iter_window_logits(_windows(count=1)))
    assert runner.n_vocab > 0  # read at load, still valid
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(GGUFFileError):
        LlamaCppRunner(tmp_path / "broken.gguf", n_ctx=N_CTX, n_threads=THREADS)
    assert logger.level == level
