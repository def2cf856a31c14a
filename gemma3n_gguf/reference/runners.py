"""Logit producers for validation: transformers (the reference) and llama.cpp (the candidate).

Both take the same token id windows (see :mod:`.windows`) and yield one float32 matrix per
window, row i = the logits after token i (the prediction for token i + 1), optionally only
from row ``first_row`` on, since llama-perplexity scores only the second half of a window
and a 262,400-token vocabulary makes every row cost 1 MB.

Each window is evaluated from an empty cache, as llama-perplexity clears its KV cache before
each chunk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import CheckpointError, ConfigError, GGUFFileError, RuntimeUnavailableError
from gemma3n_gguf.core.errors import ValidationError

ProgressCallback = Callable[[int, int], None]

_HF_CLASSES = {
    "gemma3n": "Gemma3nForConditionalGeneration",
    "gemma3n_text": "Gemma3nForCausalLM",
}


class LogitRunner(Protocol):
    """What the validation pipeline needs from a model."""

    @property
    def n_vocab(self) -> int: ...

    @property
    def settings(self) -> dict[str, Any]:
        """Everything besides the weights and tokens that changes the logits (for cache keys)."""

    def iter_window_logits(
        self,
        token_windows: Sequence[ArrayLike],
        *,
        first_row: int = 0,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[NDArray[np.float32]]: ...


# ---------------------------------------------------------------------------------------------
# transformers


class TransformersRunner:
    """The reference: Google's checkpoint in transformers, fp32, eval mode, no grad, CPU."""

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike[str],
        *,
        dtype: str = "float32",
        attn_implementation: str = "eager",
        n_threads: int | None = None,
    ) -> None:
        torch, transformers = import_transformers()
        self._torch = torch
        self._dtype = dtype
        self._attn_implementation = attn_implementation
        if n_threads is not None:
            torch.set_num_threads(n_threads)
        self._model = load_reference_model(checkpoint_dir, dtype=dtype, attn_implementation=attn_implementation)

    @property
    def n_vocab(self) -> int:
        return int(self._model.config.get_text_config().vocab_size)

    @property
    def bos_id(self) -> int | None:
        bos = self._model.config.get_text_config().bos_token_id
        return None if bos is None else int(bos)

    @property
    def settings(self) -> dict[str, Any]:
        return transformers_settings(self._dtype, self._attn_implementation)

    def iter_window_logits(
        self,
        token_windows: Sequence[ArrayLike],
        *,
        first_row: int = 0,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[NDArray[np.float32]]:
        torch = self._torch
        total = len(token_windows)
        for done, window in enumerate(token_windows, start=1):
            ids = _window_ids(window, first_row)
            input_ids = torch.from_numpy(ids.astype(np.int64))[None, :]
            keep = len(ids) - first_row if first_row else 0
            with torch.inference_mode():
                output = self._model(input_ids=input_ids, use_cache=False, logits_to_keep=keep)
            yield np.ascontiguousarray(output.logits[0].to(torch.float32).numpy())
            if on_progress is not None:
                on_progress(done, total)


def transformers_settings(dtype: str = "float32", attn_implementation: str = "eager") -> dict[str, Any]:
    """:attr:`TransformersRunner.settings` without loading a model (to look a cache up first)."""
    torch, transformers = import_transformers()
    return {
        "runtime": "transformers",
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def import_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise RuntimeUnavailableError(f"the reference model needs torch and transformers: {exc}") from exc
    # the library never prints: no weight-loading bars or advisory warnings from transformers
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return torch, transformers


def load_reference_model(checkpoint_dir: str | os.PathLike[str], *, dtype: str = "float32",
                         attn_implementation: str = "eager") -> Any:
    """The checkpoint in transformers (its own class for the config's model_type), in eval mode."""
    torch, transformers = import_transformers()
    model_class = getattr(transformers, _hf_class_name(Path(checkpoint_dir)))
    try:
        model = model_class.from_pretrained(checkpoint_dir, dtype=getattr(torch, dtype),
                                            attn_implementation=attn_implementation)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"transformers cannot load {checkpoint_dir}: {exc}") from exc
    return model.eval()


def _hf_class_name(checkpoint_dir: Path) -> str:
    config_path = checkpoint_dir / "config.json"
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"cannot read {config_path}: {exc}") from exc
    if model_type not in _HF_CLASSES:
        raise ConfigError(
            f"{config_path} has model_type {model_type!r}; expected one of {sorted(_HF_CLASSES)}"
        )
    return _HF_CLASSES[model_type]


# ---------------------------------------------------------------------------------------------
# llama.cpp


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
    ) -> None:
        llama_cpp = _import_llama_cpp()
        self._n_ctx = n_ctx
        self._kv_cache_f32 = kv_cache_f32
        self._flash_attn = flash_attn
        self._llama_cpp = llama_cpp
        kv_type = llama_cpp.GGML_TYPE_F32 if kv_cache_f32 else None
        # n_batch = n_ctx: a window goes through one llama_decode (iter_window_logits relies on
        # it), like llama-perplexity's default (-b 2048 >= -c 512).
        self._llm = _load_llama(
            gguf_path,
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ubatch,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            type_k=kv_type,
            type_v=kv_type,
            flash_attn=flash_attn,
            swa_full=swa_full,
        )
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))

    @property
    def n_vocab(self) -> int:
        return int(self._llm.n_vocab())

    @property
    def bos_id(self) -> int | None:
        """The id llama-perplexity writes over each window's first token (None: no BOS)."""
        return int(self._llm.token_bos()) if self._add_bos else None

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "runtime": "llama.cpp",
            "kv_cache": "f32" if self._kv_cache_f32 else "f16",
            "flash_attn": self._flash_attn,
        }

    def iter_window_logits(
        self,
        token_windows: Sequence[ArrayLike],
        *,
        first_row: int = 0,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[NDArray[np.float32]]:
        total = len(token_windows)
        batch = self._llama_cpp.llama_batch_init(self._n_ctx, 0, 1)
        try:
            for done, window in enumerate(token_windows, start=1):
                ids = _window_ids(window, first_row)
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
        ctx = self._llm.ctx
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
        self._llm.close()

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
    """Keep llama.cpp's loader chatter off stderr (llama-cpp-python routes it to this logger)."""
    logger = logging.getLogger("llama-cpp-python")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _load_llama(gguf_path: str | os.PathLike[str], **params: Any) -> Any:
    llama_cpp = _import_llama_cpp()
    path = Path(gguf_path)
    if not path.is_file():
        raise GGUFFileError(f"{path} does not exist")
    try:
        with _stderr_silenced():
            return llama_cpp.Llama(model_path=str(path), verbose=False, **params)
    except ValueError as exc:
        raise GGUFFileError(f"llama.cpp cannot load {path}: {exc}") from exc


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Drop what C code writes to file descriptor 2 (llama.cpp prints a KV-cache notice even
    with verbose=False); Python-level errors still propagate as exceptions."""
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


def _window_ids(window: ArrayLike, first_row: int) -> NDArray[np.int64]:
    ids = np.asarray(window).astype(np.int64, copy=False).reshape(-1)
    if not 0 <= first_row < len(ids):
        raise ValidationError(f"first_row {first_row} outside a window of {len(ids)} tokens")
    return ids
