"""LlamaCppRunner asks llama.cpp for the scored rows only (llama-perplexity's batch.logits[i] = pos >= first)
and gets the same logits as evaluating every row with llama-cpp-python's high-level API."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest

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
