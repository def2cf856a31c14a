"""A slice of a checkpoint, seen as a checkpoint: its tensors are cut from the original on read.

``SlicedCheckpoint`` answers every question a :class:`Checkpoint` answers (config, tensor names,
shapes, dtypes, rows), so the converter's plan, the engine's inputs and the safetensors writer
take it as they take a checkpoint on disk. Nothing is copied up front: each read fetches the
original rows it needs (row chunks of the PLE table included) and cuts them.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from gemma3n_gguf.core.checkpoint import Checkpoint, TensorRef
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.slice.rules import Cut, Slice, SliceRequest, resolve, sliced_config, tensor_map


class SlicedCheckpoint(Checkpoint):
    """``original`` cut as ``request`` says (checked by :func:`rules.resolve`)."""

    def __init__(self, original: Checkpoint, request: SliceRequest):
        # no super().__init__: the original has parsed the directory; this view only renames and cuts
        self.original = original
        self.directory = original.directory
        self.original_text = TextConfig.from_hf(original.config)
        self.slice: Slice = resolve(request, self.original_text)
        self.config = sliced_config(original.config, self.original_text, self.slice)
        self._cuts: dict[str, tuple[str, Cut]] = tensor_map(list(original.tensors), self.slice)
        self.tensors = {name: self._sliced_ref(name, source, cut) for name, (source, cut) in self._cuts.items()}

    @classmethod
    def open(cls, directory: str | os.PathLike[str], request: SliceRequest) -> SlicedCheckpoint:
        return cls(Checkpoint(directory), request)

    def _sliced_ref(self, name: str, source: str, cut: Cut) -> TensorRef:
        ref = self.original.ref(source)
        shape = cut.shape(ref.shape)
        nbytes = ref.nbytes // max(1, int(np.prod(ref.shape, dtype=np.int64))) * int(np.prod(shape, dtype=np.int64))
        return replace(ref, name=name, shape=shape, nbytes=nbytes)

    def read_raw(self, name: str, start_row: int = 0, stop_row: int | None = None) -> np.ndarray:
        """Rows of the sliced tensor in the stored dtype: the original rows it comes from, cut."""
        ref = self.ref(name)
        source, cut = self._cuts[name]
        if not ref.shape:
            return self.original.read_raw(source)
        stop_row = ref.shape[0] if stop_row is None else min(stop_row, ref.shape[0])
        runs = [self.original.read_raw(source, a, b) for a, b in cut.source_rows(start_row, stop_row)]
        rows = runs[0] if len(runs) == 1 else np.concatenate(runs)
        return np.ascontiguousarray(cut.cut(rows))
