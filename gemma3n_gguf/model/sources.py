"""Where a planned GGUF tensor's values come from: pure, row-addressable transforms.

Each source yields rows ``[start, stop)`` of the tensor in HF (numpy) order, as float32,
or as raw bfloat16 words when asked for ``raw`` and the bytes can pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemma3n_gguf.core.checkpoint import Checkpoint


class _OneTensor:
    """A source whose bytes are those of one checkpoint tensor (so they may pass through raw)."""

    name: str

    def raw_dtype(self, ckpt: Checkpoint) -> str:
        return ckpt.ref(self.name).dtype

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.name,)


class _Computed:
    """A source whose values are computed in float32 (never passed through raw)."""

    def raw_dtype(self, ckpt: Checkpoint) -> str:
        return "F32"


@dataclass(frozen=True)
class Copy(_OneTensor):
    """One checkpoint tensor as is."""

    name: str

    def rows(self, ckpt: Checkpoint, start: int, stop: int, raw: bool = False) -> np.ndarray:
        return ckpt.read_raw(self.name, start, stop) if raw else ckpt.read(self.name, start, stop)


@dataclass(frozen=True)
class PadRows(_OneTensor):
    """A table grown to ``total_rows``; new rows are zeros, or copies of row 0 (the row
    transformers uses for ids past the PLE vocabulary, see the hard-token option)."""

    name: str
    total_rows: int
    fill_with_row0: bool = False

    def rows(self, ckpt: Checkpoint, start: int, stop: int, raw: bool = False) -> np.ndarray:
        have = ckpt.ref(self.name).shape[0]
        read = (lambda a, b: ckpt.read_raw(self.name, a, b)) if raw else (lambda a, b: ckpt.read(self.name, a, b))
        parts = []
        if start < have:
            parts.append(read(start, min(stop, have)))
        pad = stop - max(start, have)
        if pad > 0:
            row0 = read(0, 1)
            parts.append(np.repeat(row0, pad, axis=0) if self.fill_with_row0 else np.zeros((pad, *row0.shape[1:]), row0.dtype))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Stack(_Computed):
    """Tensors stacked along a new leading axis (AltUp projections: 3 x [E, E])."""

    names: tuple[str, ...]

    def rows(self, ckpt: Checkpoint, start: int, stop: int, raw: bool = False) -> np.ndarray:
        return np.stack([ckpt.read(n) for n in self.names[start:stop]])

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.names


@dataclass(frozen=True)
class Constant(_Computed):
    """A tensor the checkpoint lacks and llama.cpp requires but never reads."""

    shape: tuple[int, ...]
    value: float

    def rows(self, ckpt: Checkpoint, start: int, stop: int, raw: bool = False) -> np.ndarray:
        return np.full((stop - start, *self.shape[1:]), self.value, dtype=np.float32)

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class HardTokenEmbedder:
    """A transformers ``Gemma3nMultimodalEmbedder`` (``embed_vision`` / ``embed_audio``) and
    the token ids it embeds: ``[vocab_offset, vocab_offset + vocab_size)``."""

    prefix: str  # e.g. "model.embed_vision."
    vocab_offset: int
    vocab_size: int
    eps: float

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.prefix + t for t in ("embedding.weight", "hard_embedding_norm.weight",
                                               "embedding_projection.weight"))

    def embed(self, ckpt: Checkpoint, start: int, stop: int) -> np.ndarray:
        """What transformers feeds the text model for hard tokens ``offset + [start, stop)``:
        RMSNorm(projection(RMSNorm(embedding) * w_hard)), the last norm without weight."""
        table, norm_weight, projection = self.inputs
        hard = _rms_norm(ckpt.read(table, start, stop).astype(np.float64), self.eps) * ckpt.read(norm_weight)
        return _rms_norm(hard @ ckpt.read(projection).astype(np.float64).T, self.eps)


def _rms_norm(x: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


@dataclass(frozen=True)
class BakedHardTokens(_Computed):
    """``token_embd`` whose multimodal hard-token rows hold what transformers embeds those
    ids as. llama.cpp looks every id up in ``token_embd`` and multiplies the row by
    sqrt(hidden), while transformers embeds ids from ``vocab_offset`` on through the
    vision/audio embedders; baking ``embedder output / sqrt(hidden)`` makes the two agree."""

    name: str  # embed_tokens
    total_rows: int
    hidden_size: int
    embedders: tuple[HardTokenEmbedder, ...]

    def rows(self, ckpt: Checkpoint, start: int, stop: int, raw: bool = False) -> np.ndarray:
        out = np.array(PadRows(self.name, self.total_rows).rows(ckpt, start, stop), dtype=np.float32)
        for e in self.embedders:
            lo, hi = max(start, e.vocab_offset), min(stop, e.vocab_offset + e.vocab_size)
            if lo < hi:
                baked = e.embed(ckpt, lo - e.vocab_offset, hi - e.vocab_offset) / np.sqrt(self.hidden_size)
                out[lo - start : hi - start] = baked
        return out

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.name, *(n for e in self.embedders for n in e.inputs))


Source = Copy | PadRows | Stack | Constant | BakedHardTokens
