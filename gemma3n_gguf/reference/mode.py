"""Which reference runs: the whole model in memory, or the layer-streamed one.

Both compute the same fp32 function with transformers' modules (tests/reference/test_streamed.py);
the in-memory model is faster when it fits, the streamed one holds one decoder layer, the rows of
the tokens in use and one vocabulary chunk. ``auto`` loads the model whole only when its fp32
weights (every tensor of the checkpoint, towers included, as ``from_pretrained`` loads them)
fit in the available memory with room to spare, estimated from the safetensors headers alone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.core.memory import available_memory_bytes
from gemma3n_gguf.core.units import human_bytes

AUTO, MEMORY, STREAMED = "auto", "memory", "streamed"
REFERENCE_MODES = (AUTO, MEMORY, STREAMED)
# room to spare: activations, logits and the allocator's slack on top of the weights
HEADROOM_FACTOR = 1.5
HEADROOM_BYTES = 2 << 30


@dataclass(frozen=True)
class ReferenceMode:
    """The mode that runs and why."""

    mode: str  # MEMORY or STREAMED
    requested: str
    in_memory_bytes: int
    """fp32 bytes of the whole checkpoint, what loading it in memory takes before any activation."""
    available_bytes: int

    def describe(self) -> str:
        how = "chosen by auto" if self.requested == AUTO else "requested"
        return (f"{self.mode} ({how}: the fp32 model is {human_bytes(self.in_memory_bytes)}, "
                f"{human_bytes(self.available_bytes)} available)")


def in_memory_bytes(checkpoint_dir: str | os.PathLike[str]) -> int:
    """fp32 bytes of every tensor in the checkpoint (read from the safetensors headers)."""
    tensors = Checkpoint(checkpoint_dir).tensors.values()
    return 4 * sum(math.prod(ref.shape) for ref in tensors)


def resolve_reference_mode(requested: str, checkpoint_dir: str | os.PathLike[str], *,
                           available_bytes: int | None = None) -> ReferenceMode:
    """``memory`` or ``streamed`` for ``requested``; ``auto`` weighs the model against ``available_bytes``
    (default: what the kernel reports available now)."""
    if requested not in REFERENCE_MODES:
        raise ValidationError(f"unknown --reference-mode {requested!r}; choose one of {', '.join(REFERENCE_MODES)}")
    needed = in_memory_bytes(checkpoint_dir)
    available = available_memory_bytes() if available_bytes is None else available_bytes
    mode = requested
    if requested == AUTO:
        mode = MEMORY if needed * HEADROOM_FACTOR + HEADROOM_BYTES <= available else STREAMED
    return ReferenceMode(mode, requested, needed, available)


def make_reference_runner(checkpoint_dir: str | os.PathLike[str], mode: str, *,
                          n_threads: int | None = None) -> Any:
    """The reference :class:`~gemma3n_gguf.reference.runners.LogitRunner` for a resolved mode."""
    if mode == STREAMED:
        from gemma3n_gguf.reference.streamed import StreamedRunner

        return StreamedRunner(checkpoint_dir, n_threads=n_threads)
    from gemma3n_gguf.reference.runners import TransformersRunner

    return TransformersRunner(checkpoint_dir, n_threads=n_threads)
