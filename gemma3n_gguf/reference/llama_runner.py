"""The candidate side of validation: a GGUF run by llama.cpp through llama-cpp-python's C API
(CPU only), and tokenization with a GGUF's own vocabulary.

The model and its context are made with the C functions rather than ``llama_cpp.Llama``, which
does not expose llama.cpp's weight-repacking switch: repacking is llama.cpp's default and ours,
and ``repack=False`` computes from the mapped file in place (see :func:`_load_model`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import GGUFFileError, RuntimeUnavailableError, ValidationError
from gemma3n_gguf.reference.runners import ProgressCallback, window_ids


class LlamaCppRunner:
    """The candidate: a GGUF run by llama.cpp through llama-cpp-python, CPU only.

    ``kv_cache_f32`` stores K and V in F32; the default F16 cache rounds Q, K, V and the
    attention probabilities, a runtime difference no converter can remove.
    """

    def __init__(
        self,
        gguf_path: str | os.PathLike[str],
        *,
        n_ctx: int,
        n_ubatch: int = 512,
        n_threads: int | None = None,
        kv_cache_f32: bool = False,
        flash_attn: bool = False,
        swa_full: bool | None = None,
        repack: bool = True,
    ) -> None:
        llama_cpp = _import_llama_cpp()
        self._n_ctx = n_ctx
        self._kv_cache_f32 = kv_cache_f32
        self._flash_attn = flash_attn
        self._repack = repack
        self._llama_cpp = llama_cpp
        self._ctx = self._model = None
        # llama.cpp logs through llama-cpp-python's logger while decoding and freeing too: kept
        # quiet for the runner's whole life, as Llama(verbose=False) keeps it
        self._quiet = contextlib.ExitStack()
        self._quiet.enter_context(_quiet_llama_logs())
        try:
            self._model = _load_model(gguf_path, repack=repack)
            # n_batch = n_ctx: a window goes through one llama_decode (iter_window_logits relies
            # on it), like llama-perplexity's default (-b 2048 >= -c 512).
            self._ctx = _new_context(self._model, gguf_path, n_ctx=n_ctx, n_ubatch=n_ubatch, n_threads=n_threads,
                                     kv_cache_f32=kv_cache_f32, flash_attn=flash_attn, swa_full=swa_full)
            # read while the model is loaded: they stay valid after close
            vocab = llama_cpp.llama_model_get_vocab(self._model)
            self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
            self._bos_id = int(llama_cpp.llama_vocab_bos(vocab)) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        except BaseException:
            self.close()
            raise

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def bos_id(self) -> int | None:
        """The id llama-perplexity writes over each window's first token (None: no BOS)."""
        return self._bos_id

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "llama.cpp",
            "kv_cache": "f32" if self._kv_cache_f32 else "f16",
            "flash_attn": self._flash_attn,
            "weight_repack": self._repack,
        }

    def iter_window_logits(
        self,
        token_windows: Sequence[ArrayLike],
        *,
        first_row: int = 0,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[NDArray[np.float32]]:
        if self._ctx is None:
            raise ValidationError("this llama.cpp runner is closed")
        total = len(token_windows)
        batch = self._llama_cpp.llama_batch_init(self._n_ctx, 0, 1)
        try:
            for done, window in enumerate(token_windows, start=1):
                ids = window_ids(window, first_row)
                if len(ids) > self._n_ctx:
                    raise ValidationError(f"a window of {len(ids)} tokens exceeds n_ctx {self._n_ctx}")
                yield self._scored_logits(batch, ids, first_row, window_number=done)
                if on_progress is not None:
                    on_progress(done, total)
        finally:
            self._llama_cpp.llama_batch_free(batch)

    def _scored_logits(self, batch: Any, ids: NDArray[np.int64], first_row: int,
                       *, window_number: int) -> NDArray[np.float32]:
        """One llama_decode of ``ids`` from an empty cache, as llama-perplexity does it: logits
        are requested only for rows >= first_row, so llama.cpp computes and stores only those."""
        llama_cpp = self._llama_cpp
        ctx = self._ctx
        if ctx is None:  # closed while a window generator was suspended
            raise ValidationError("this llama.cpp runner is closed")
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        _fill_single_sequence_batch(batch, ids, first_row)
        status = llama_cpp.llama_decode(ctx, batch)
        if status != 0:
            raise ValidationError(f"llama.cpp failed on window {window_number}: llama_decode returned {status}")
        # the output rows are the requested ones, contiguous in batch order; reused by the
        # next decode, so copied out
        scored = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(len(ids) - first_row, self.n_vocab))
        return scored.copy()

    def close(self) -> None:
        ctx, model = self._ctx, self._model
        self._ctx = self._model = None
        try:
            with _stderr_silenced():
                if ctx is not None:
                    self._llama_cpp.llama_free(ctx)
                if model is not None:
                    self._llama_cpp.llama_model_free(model)
        finally:
            self._quiet.close()

    def __enter__(self) -> LlamaCppRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def tokenize_with_llama(
    gguf_path: str | os.PathLike[str], text: str, *, add_bos: bool = True, special: bool = False
) -> list[int]:
    """Tokenize ``text`` with a GGUF's own tokenizer (vocabulary only: no weights, no context).

    The defaults match llama-perplexity: BOS added, special-token text not parsed.
    """
    llama_cpp = _import_llama_cpp()
    path = Path(gguf_path)
    if not path.is_file():
        raise GGUFFileError(f"{path} does not exist")
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with _quiet_llama_logs():
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise GGUFFileError(f"llama.cpp cannot read the vocabulary of {path}")
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        data = text.encode("utf-8")
        # A first call with no buffer returns minus the number of tokens needed.
        needed = -llama_cpp.llama_tokenize(vocab, data, len(data), None, 0, add_bos, special)
        buffer = (llama_cpp.llama_token * max(needed, 1))()
        count = llama_cpp.llama_tokenize(vocab, data, len(data), buffer, needed, add_bos, special)
        if count < 0:
            raise ValidationError(f"llama.cpp failed to tokenize the text ({count})")
        return [int(token) for token in buffer[:count]]
    finally:
        llama_cpp.llama_model_free(model)


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"llama-cpp-python is not installed ({exc}); pip install llama-cpp-python==0.3.36"
        ) from exc
    return llama_cpp


@contextlib.contextmanager
def _quiet_llama_logs() -> Iterator[None]:
    """Keep llama.cpp's chatter off stderr (llama-cpp-python routes it to this logger). Above
    CRITICAL: llama-cpp-python's table of ggml's log levels predates ggml's renumbering and passes
    llama.cpp's warnings as ERROR; a failure reaches us as a return code anyway."""
    logger = logging.getLogger("llama-cpp-python")
    previous = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _load_model(gguf_path: str | os.PathLike[str], *, repack: bool) -> Any:
    """The model's weights, mapped from the file; with ``repack`` False the CPU backend uses them
    in place instead of keeping a second, interleaved copy of every matrix it can repack
    (llama.cpp's ``--no-repack``: the same products, summed in another order)."""
    llama_cpp = _import_llama_cpp()
    path = Path(gguf_path)
    if not path.is_file():
        raise GGUFFileError(f"{path} does not exist")
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP
    params.use_extra_bufts = repack
    with _stderr_silenced():  # the caller keeps the logger quiet
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise GGUFFileError(f"llama.cpp cannot load {path} (run `gemma3n-gguf inspect {path}` to see why)")
    return model


def _new_context(model: Any, gguf_path: str | os.PathLike[str], *, n_ctx: int, n_ubatch: int,
                 n_threads: int | None, kv_cache_f32: bool, flash_attn: bool, swa_full: bool | None) -> Any:
    """A context with the settings llama-cpp-python's ``Llama`` would give these arguments
    (its thread defaults: half the cores for one token, all of them for a batch)."""
    llama_cpp = _import_llama_cpp()
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = params.n_batch = n_ctx
    params.n_ubatch = min(n_ctx, n_ubatch)
    cores = multiprocessing.cpu_count()
    params.n_threads = n_threads or max(cores // 2, 1)
    params.n_threads_batch = n_threads or cores
    params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn
                              else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    if swa_full is not None:
        params.swa_full = swa_full
    if kv_cache_f32:
        params.type_k = params.type_v = llama_cpp.GGML_TYPE_F32
    with _stderr_silenced():
        ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:
        raise GGUFFileError(f"llama.cpp cannot make a context of {n_ctx} tokens for {gguf_path}")
    return ctx


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Drop what C code writes to file descriptor 2 (ggml's backends can print there directly,
    past the logger); Python-level errors still propagate as exceptions."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _fill_single_sequence_batch(batch: Any, ids: NDArray[np.int64], first_row: int) -> None:
    """Sequence 0 at positions 0..len(ids)-1, an output (logits) only from ``first_row`` on."""
    n_tokens = len(ids)
    batch.n_tokens = n_tokens
    np.ctypeslib.as_array(batch.token, shape=(n_tokens,))[:] = ids
    np.ctypeslib.as_array(batch.pos, shape=(n_tokens,))[:] = np.arange(n_tokens)
    np.ctypeslib.as_array(batch.n_seq_id, shape=(n_tokens,))[:] = 1
    np.ctypeslib.as_array(batch.logits, shape=(n_tokens,))[:] = np.arange(n_tokens) >= first_row
    for row in range(n_tokens):
        batch.seq_id[row][0] = 0
