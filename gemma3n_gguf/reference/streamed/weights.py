"""The checkpoint's weights as the streamed reference needs them: whole modules, gathered rows, vocabulary chunks.

Everything is read from safetensors through :class:`~gemma3n_gguf.core.checkpoint.Checkpoint` and widened
to float32 exactly as ``from_pretrained(dtype=torch.float32)`` widens it, so a module filled here holds the
very values the in-memory reference holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import CheckpointError, ConfigError

# model_type -> where the text model's tensors live
_TEXT_PREFIXES = {"gemma3n": "model.language_model.", "gemma3n_text": "model."}
_LM_HEAD = "lm_head.weight"
VOCAB_CHUNK_BYTES = 64 << 20  # float32 bytes of one chunk of the LM head


class CheckpointWeights:
    """A Gemma 3n checkpoint's config (as transformers reads it) and its tensors, read on demand."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        self.checkpoint = Checkpoint(checkpoint_dir)
        model_type = self.checkpoint.config.get("model_type")
        if model_type not in _TEXT_PREFIXES:
            raise ConfigError(
                f"{self.checkpoint.directory} has model_type {model_type!r}; expected one of {sorted(_TEXT_PREFIXES)}"
            )
        self.multimodal = model_type == "gemma3n"
        self.text_prefix = _TEXT_PREFIXES[model_type]
        self.config = _eager_config(self.checkpoint.directory)
        self.text_config = self.config.get_text_config()

    @property
    def embedding_name(self) -> str:
        return self.text_prefix + "embed_tokens.weight"

    @property
    def ple_name(self) -> str:
        return self.text_prefix + "embed_tokens_per_layer.weight"

    @property
    def lm_head_name(self) -> str:
        """The output matrix: the embedding table unless the config unties a stored ``lm_head``."""
        tied = getattr(self.config, "tie_word_embeddings", True)
        return _LM_HEAD if not tied and _LM_HEAD in self.checkpoint else self.embedding_name

    def fill_module(self, module: Any, prefix: str) -> None:
        """Give every parameter and persistent buffer of ``module`` its stored float32 value.

        Keys the checkpoint holds but the module lacks (K/V of KV-shared layers in Google's files)
        are ignored, as ``from_pretrained`` ignores them.
        """
        import torch

        state = {}
        for key, expected in module.state_dict().items():
            array = self.read(prefix + key)
            if tuple(array.shape) != tuple(expected.shape):
                raise CheckpointError(
                    f"tensor {prefix + key} has shape {tuple(array.shape)}, the config implies {tuple(expected.shape)}"
                )
            state[key] = torch.from_numpy(array)
        module.load_state_dict(state, strict=True, assign=True)

    def read(self, name: str, start_row: int = 0, stop_row: int | None = None) -> np.ndarray:
        """Rows of a tensor as a writable float32 array (torch takes it without a copy)."""
        return np.require(self.checkpoint.read(name, start_row, stop_row), np.float32, "W")

    def gather_rows(self, name: str, row_ids: np.ndarray) -> np.ndarray:
        """The rows ``row_ids`` (sorted, unique) of a table, reading each run of consecutive ids once."""
        if len(row_ids) == 0:
            return np.empty((0, *self.checkpoint.ref(name).shape[1:]), dtype=np.float32)
        breaks = np.flatnonzero(np.diff(row_ids) != 1) + 1
        runs = zip(np.concatenate([[0], breaks]), np.concatenate([breaks, [len(row_ids)]]))
        return np.concatenate(
            [self.read(name, int(row_ids[a]), int(row_ids[b - 1]) + 1) for a, b in runs]
        )

    def iter_vocab_chunks(self, name: str, chunk_bytes: int = VOCAB_CHUNK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 rows) of a vocabulary-sized matrix, ``chunk_bytes`` at a time."""
        n_rows, width = self.checkpoint.ref(name).shape
        step = max(1, chunk_bytes // (4 * width))
        for start in range(0, n_rows, step):
            yield start, self.read(name, start, start + step)


def _eager_config(directory: os.PathLike[str]) -> Any:
    """The checkpoint's transformers config, with the eager attention the reference runs."""
    from gemma3n_gguf.reference.runners import import_transformers

    _, transformers = import_transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(directory)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"transformers cannot read the config of {directory}: {exc}") from exc
    config._attn_implementation = "eager"
    return config
