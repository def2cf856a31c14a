"""Streaming GGUF writer: metadata and tensor infos first, then tensor data chunk by chunk.

gguf-py's ``GGUFWriter`` writes the header, key-values and tensor infos; we append the
data ourselves in chunks (with GGUF's alignment padding) so no tensor is ever held whole.
The file is written to a temporary sibling and renamed into place on success.

Shapes at this boundary are in numpy order (outermost dimension first), as gguf-py's writer
takes them; the planners (engine/) work in ggml order and reverse once, when they build jobs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUFWriter, GGMLQuantizationType

from gemma3n_gguf.core.atomic import atomic_path

Progress = Callable[[int, int, str], None]  # (bytes done, bytes total, current tensor)


class TensorLike(Protocol):
    name: str
    shape: tuple[int, ...]  # numpy order
    qtype: GGMLQuantizationType

    @property
    def nbytes(self) -> int: ...


class SizedTensor:
    """Element and byte counts of a tensor with a ``shape`` (either order) and a ``qtype``: the
    one definition the plans, the pipeline's jobs and the writer share."""

    shape: tuple[int, ...]
    qtype: GGMLQuantizationType

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        block, size = GGML_QUANT_SIZES[self.qtype]
        return self.n_elements // block * size


def write_gguf(
    path: str | os.PathLike[str],
    arch: str,
    add_metadata: Callable[[GGUFWriter], None],
    tensors: Sequence[TensorLike],
    data: Callable[[TensorLike], Iterable[np.ndarray]],
    on_progress: Progress | None = None,
) -> Path:
    """Write a GGUF file atomically; ``data(t)`` yields the encoded bytes of ``t`` in order."""
    dest = Path(path)
    with atomic_path(dest) as tmp:
        writer = GGUFWriter(tmp, arch)
        with contextlib.closing(writer):  # closed on failure too, before the temp file goes
            add_metadata(writer)
            for t in tensors:
                # a float dtype keeps gguf-py from reinterpreting the shape as bytes
                writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            _write_tensor_data(writer, tensors, data, on_progress)
    return dest


def _write_tensor_data(writer: GGUFWriter, tensors: Sequence[TensorLike],
                       data: Callable[[TensorLike], Iterable[np.ndarray]], on_progress: Progress | None) -> None:
    fout = writer.fout[0]
    total = sum(t.nbytes for t in tensors)
    done = 0
    for t in tensors:
        writer.write_padding(fout, fout.tell())
        written = 0
        for chunk in data(t):
            buf = memoryview(np.ascontiguousarray(chunk)).cast("B")
            fout.write(buf)
            written += len(buf)
            if on_progress:
                on_progress(done + written, total, t.name)
        if written != t.nbytes:
            raise AssertionError(f"{t.name}: wrote {written} bytes, planned {t.nbytes}")
        writer.write_padding(fout, written)
        done += written


def chunked_rows(n_rows: int, row_bytes: int, budget: int = 32 << 20) -> Iterator[tuple[int, int]]:
    """Row ranges whose float32 size stays near ``budget`` bytes."""
    step = max(1, budget // max(1, row_bytes))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)
