"""Logit producers for validation: the :class:`LogitRunner` protocol and transformers (the
reference); llama.cpp (the candidate) is in :mod:`.llama_runner`.

Both take the same token id windows (see :mod:`.windows`) and yield one float32 matrix per
window, row i = the logits after token i (the prediction for token i + 1), optionally only
from row ``first_row`` on, since llama-perplexity scores only the second half of a window
and a 262,400-token vocabulary makes every row cost 1 MB.

Each window is evaluated from an empty cache, as llama-perplexity clears its KV cache before
each chunk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import CheckpointError, ConfigError, RuntimeUnavailableError
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
            ids = window_ids(window, first_row)
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


def window_ids(window: ArrayLike, first_row: int) -> NDArray[np.int64]:
    ids = np.asarray(window).astype(np.int64, copy=False).reshape(-1)
    if not 0 <= first_row < len(ids):
        raise ValidationError(f"first_row {first_row} outside a window of {len(ids)} tokens")
    return ids
