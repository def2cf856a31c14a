"""One validated reader of safetensors shard headers, as strict as the safetensors library.

The library (``safetensors/src/tensor.rs``, ``SafeTensors::read_metadata``) refuses a header
longer than 100,000,000 bytes, one that is not UTF-8 JSON, entries without a known dtype,
an integer shape and two integer ``data_offsets``, and a data section that the tensors,
sorted by offset, do not tile exactly: each begins where the previous ended, spans
``prod(shape) * itemsize`` bytes, and the last ends at the end of the file. ``__metadata__``
is a str -> str object. Every refusal here is a :class:`CheckpointError` naming the file.
Only the header is read; tensor data stays on disk.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gemma3n_gguf.core.errors import CheckpointError

MAX_HEADER_BYTES = 100_000_000  # safetensors' MAX_HEADER_SIZE
METADATA_KEY = "__metadata__"

# safetensors dtype tag -> numpy dtype holding the raw bytes (the dtypes a Gemma checkpoint can use)
RAW_DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # numpy has no bfloat16: kept as raw 16-bit words
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor's bytes live inside a shard."""

    name: str
    dtype: str  # safetensors tag: F32, F16, BF16, ...
    shape: tuple[int, ...]
    file: Path
    offset: int  # absolute byte offset of the data in ``file``
    nbytes: int

    @property
    def row_nbytes(self) -> int:
        rows = self.shape[0] if self.shape else 1
        return self.nbytes // rows if rows else 0


@dataclass(frozen=True)
class ShardHeader:
    """A validated shard header: its raw bytes, where the data begins, and its tensors in file order."""

    path: Path
    raw: bytes
    data_start: int
    tensors: tuple[TensorRef, ...]
    metadata: dict[str, str]


def read_shard_header(path: str | os.PathLike[str]) -> ShardHeader:
    """The header of the safetensors file ``path``, or a CheckpointError saying what is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            raw = _read_raw_header(path, stream, size)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    entries, metadata = _parse_header(path, raw)
    data_start = 8 + len(raw)
    tensors = _place_tensors(path, entries, data_start, size - data_start)
    return ShardHeader(path, raw, data_start, tensors, metadata)


def _read_raw_header(path: Path, stream, size: int) -> bytes:
    head = stream.read(8)
    if len(head) != 8:
        raise CheckpointError(f"{path} is not a safetensors file (shorter than the 8-byte header length)")
    (header_len,) = struct.unpack("<Q", head)
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} declares a {header_len:,}-byte header; safetensors refuses headers "
                              f"over {MAX_HEADER_BYTES:,} bytes (a corrupt or hostile file)")
    if 8 + header_len > size:
        raise CheckpointError(f"{path} is truncated or not a safetensors file: its header needs "
                              f"{8 + header_len:,} bytes, the file has {size:,}")
    return stream.read(header_len)


def _parse_header(path: Path, raw: bytes) -> tuple[dict[str, dict], dict[str, str]]:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} has a corrupt safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt safetensors header: not a JSON object")
    metadata = header.pop(METADATA_KEY, None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: {METADATA_KEY} must be an object of strings to strings")
    return header, metadata


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen.add(key)
    return dict(pairs)


def _place_tensors(path: Path, entries: dict[str, dict], data_start: int, data_len: int) -> tuple[TensorRef, ...]:
    refs = [_tensor_ref(path, name, info, data_start) for name, info in entries.items()]
    refs.sort(key=lambda r: (r.offset, r.offset + r.nbytes))
    expected = data_start
    for ref in refs:
        if ref.offset != expected:
            what = "overlaps the previous tensor" if ref.offset < expected else "leaves a gap before it"
            raise CheckpointError(f"{path}: tensor {ref.name} begins at data byte {ref.offset - data_start} "
                                  f"and {what} (expected {expected - data_start}); the header is corrupt")
        expected += ref.nbytes
    covered = expected - data_start
    if covered > data_len:
        raise CheckpointError(f"{path} is truncated: its tensors need {covered:,} data bytes, the file holds "
                              f"{data_len:,}; re-download this shard")
    if covered < data_len:
        raise CheckpointError(f"{path} has {data_len - covered:,} data bytes no tensor accounts for; "
                              "safetensors refuses such a file")
    return tuple(refs)


def _tensor_ref(path: Path, name: str, info: object, data_start: int) -> TensorRef:
    where = f"{path}: tensor {name}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{where} is not described by an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in RAW_DTYPES:
        raise CheckpointError(f"{where} has unsupported dtype {dtype!r} "
                              f"(supported: {', '.join(RAW_DTYPES)})")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise CheckpointError(f"{where} has shape {shape!r}; a shape is a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(n) for n in offsets):
        raise CheckpointError(f"{where} has data_offsets {offsets!r}; expected [begin, end] byte offsets")
    begin, end = offsets
    nbytes = math.prod(shape) * RAW_DTYPES[dtype].itemsize
    if end - begin != nbytes:
        raise CheckpointError(f"{where} has data_offsets [{begin}, {end}] ({end - begin} bytes), but "
                              f"{dtype} {shape} takes {nbytes} bytes; the header is corrupt")
    return TensorRef(name, dtype, tuple(shape), path, data_start + begin, nbytes)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
