"""One GGUF reader: gguf-py's GGUFReader behind the checks ggml's own reader makes.

gguf-py trusts the header: an absurd array or string length makes it loop or read short
slices silently, and it never checks that tensor offsets follow one another or that the
bytes fit the file. Before it sees a file, the header is walked here with the rules of
``gguf_init_from_file_impl`` (``ggml/src/gguf.cpp`` of llama-cpp-python 0.3.36's llama.cpp)
plus llama.cpp's loader check that every tensor's data lies inside the file. A file ggml
would refuse raises :class:`GGUFFileError` saying why it will not load.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGUFReader, GGUFValue, GGUFValueType
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.errors import GGUFFileError
from gemma3n_gguf.core.llama_facts import GGUF_ALIGNMENT

# The limits of ggml's reader (gguf.cpp, ggml.h).
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
GGUF_MAX_STRING_LENGTH = 1024 * 1024 * 1024
GGUF_MAX_ARRAY_ELEMENTS = 1024 * 1024 * 1024
GGML_MAX_NAME = 64
GGML_MAX_DIMS = 4
INT64_MAX = 2**63 - 1
ALIGNMENT_KEY = "general.alignment"

SCALAR_SIZES: dict[GGUFValueType, int] = {
    GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
}


@dataclass(frozen=True)
class TensorSlot:
    """One tensor as the header declares it: shape in ggml order, offset relative to the data section."""

    name: str
    shape: tuple[int, ...]
    type: T
    offset: int
    nbytes: int


@dataclass(frozen=True)
class GGUFLayout:
    version: int
    alignment: int
    data_start: int
    tensors: tuple[TensorSlot, ...]


class _Cursor:
    """Reads the header front to back, refusing what ggml's ``gguf_reader`` refuses."""

    def __init__(self, buf, path: Path):
        self.buf, self.path, self.pos = buf, path, 0

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def fail(self, why: str) -> GGUFFileError:
        return GGUFFileError(f"{self.path} will not load in llama.cpp: {why}")

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        if size > self.remaining:
            raise self.fail(f"the file is truncated inside {what}")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def skip(self, nbytes: int, what: str) -> None:
        if nbytes > self.remaining:
            raise self.fail(f"{what} needs {nbytes:,} bytes, only {self.remaining:,} are left in the file")
        self.pos += nbytes

    def string(self, what: str) -> bytes:
        (length,) = self.take("<Q", what)
        if length > GGUF_MAX_STRING_LENGTH:
            raise self.fail(f"{what} declares an absurd length of {length:,} bytes")
        self.skip(length, what)
        return bytes(self.buf[self.pos - length:self.pos])

    def value_type(self, what: str) -> GGUFValueType:
        (raw,) = self.take("<I", what)
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise self.fail(f"{what} has unknown GGUF type {raw}") from None


def read_layout(buf, path: Path) -> GGUFLayout:
    """Walk a GGUF header (any buffer) with ggml's rules; the layout, or a GGUFFileError."""
    cur = _Cursor(buf, path)
    version, n_tensors, n_kv = _read_preamble(cur)
    alignment = _skip_kv(cur, n_kv)
    slots = [_read_tensor_info(cur, i) for i in range(n_tensors)]
    _refuse_duplicate_names(cur, slots)
    data_start = cur.pos + (-cur.pos % alignment if slots else 0)
    if data_start > len(buf):
        raise cur.fail("the file ends before its data section begins")
    _check_data_layout(cur, slots, alignment, data_start)
    return GGUFLayout(version, alignment, data_start, tuple(slots))


def _read_preamble(cur: _Cursor) -> tuple[int, int, int]:
    if bytes(cur.buf[:4]) != GGUF_MAGIC:
        raise GGUFFileError(f"{cur.path} is not a GGUF file (its first bytes are not 'GGUF')")
    cur.pos = 4
    (version,) = cur.take("<I", "the version")
    if version not in GGUF_VERSIONS:
        swapped = " (byte-swapped: a big-endian file?)" if version and not version & 0xFFFF else ""
        raise cur.fail(f"GGUF version {version}{swapped} is not supported (llama.cpp reads versions 2 and 3)")
    n_tensors, n_kv = cur.take("<qq", "the tensor and key-value counts")
    # Every key-value takes at least 13 bytes and every tensor info 24: larger counts cannot fit.
    if not 0 <= n_kv <= cur.remaining // 13 or not 0 <= n_tensors <= cur.remaining // 24:
        raise cur.fail(f"absurd counts ({n_tensors:,} tensors, {n_kv:,} key-values) for a "
                       f"{len(cur.buf):,}-byte file")
    return version, n_tensors, n_kv


def _skip_kv(cur: _Cursor, n_kv: int) -> int:
    """Check every key-value; the data alignment they set."""
    seen: set[bytes] = set()
    alignment = GGUF_ALIGNMENT
    for i in range(n_kv):
        key = cur.string(f"key {i}")
        if not key or key in seen:
            raise cur.fail(f"key {i} is {'empty' if not key else 'a duplicate of ' + repr(key.decode(errors='replace'))}")
        seen.add(key)
        what = f"the value of {key.decode(errors='replace')!r}"
        vtype = cur.value_type(what)
        start = cur.pos
        _skip_value(cur, vtype, what)
        if key.decode(errors="replace") == ALIGNMENT_KEY:
            if vtype != GGUFValueType.UINT32:
                raise cur.fail(f"{ALIGNMENT_KEY} must be a UINT32, not {vtype.name}")
            (alignment,) = struct.unpack_from("<I", cur.buf, start)
            if alignment == 0 or alignment & (alignment - 1):
                raise cur.fail(f"{ALIGNMENT_KEY} {alignment} is not a power of 2")
    return alignment


def _skip_value(cur: _Cursor, vtype: GGUFValueType, what: str) -> None:
    if vtype == GGUFValueType.STRING:
        cur.string(what)
        return
    if vtype in SCALAR_SIZES:
        cur.skip(SCALAR_SIZES[vtype], what)
        return
    sub = cur.value_type(what)
    (count,) = cur.take("<Q", what)
    size = 8 if sub == GGUFValueType.STRING else SCALAR_SIZES.get(sub)
    if size is None:
        raise cur.fail(f"{what} is an array of {sub.name}, which GGUF does not allow")
    if count > GGUF_MAX_ARRAY_ELEMENTS or count * size > cur.remaining:
        raise cur.fail(f"{what} declares {count:,} elements, more than the file can hold")
    if sub == GGUFValueType.STRING:
        for j in range(count):
            cur.string(f"{what}[{j}]")
    else:
        cur.skip(count * size, what)


def _read_tensor_info(cur: _Cursor, index: int) -> TensorSlot:
    raw_name = cur.string(f"the name of tensor {index}")
    if len(raw_name) >= GGML_MAX_NAME:
        raise cur.fail(f"tensor {index}'s name is {len(raw_name)} bytes long (the limit is {GGML_MAX_NAME - 1})")
    name = raw_name.decode("utf-8", errors="replace")
    (n_dims,) = cur.take("<I", f"tensor {name}")
    if n_dims > GGML_MAX_DIMS:
        raise cur.fail(f"tensor {name} has {n_dims} dimensions (at most {GGML_MAX_DIMS})")
    shape = cur.take(f"<{n_dims}q", f"tensor {name}")
    if any(n < 0 for n in shape):
        raise cur.fail(f"tensor {name} has a negative dimension {shape}")
    n_elements = 1
    for n in shape:
        n_elements *= n
    if n_elements > INT64_MAX:
        raise cur.fail(f"tensor {name}'s shape {shape} overflows ggml's element count")
    (raw_type,) = cur.take("<i", f"tensor {name}")
    qtype = _known_type(cur, name, raw_type)
    block, type_size = GGML_QUANT_SIZES[qtype]
    ne0 = shape[0] if shape else 1
    if ne0 % block:
        raise cur.fail(f"tensor {name} of type {qtype.name} has {ne0} values per row, not a multiple "
                       f"of its block size {block}")
    (offset,) = cur.take("<Q", f"tensor {name}")
    return TensorSlot(name, tuple(shape), qtype, offset, n_elements // block * type_size)


def _known_type(cur: _Cursor, name: str, raw_type: int) -> T:
    try:
        qtype = T(raw_type)
    except ValueError:
        raise cur.fail(f"tensor {name} has unknown ggml type {raw_type}") from None
    if qtype not in GGML_QUANT_SIZES:
        raise cur.fail(f"tensor {name} has ggml type {qtype.name}, whose size is unknown")
    return qtype


def _refuse_duplicate_names(cur: _Cursor, slots: list[TensorSlot]) -> None:
    seen: set[str] = set()
    for slot in slots:
        if slot.name in seen:
            raise cur.fail(f"tensor name {slot.name} appears twice")
        seen.add(slot.name)


def _check_data_layout(cur: _Cursor, slots: list[TensorSlot], alignment: int, data_start: int) -> None:
    """ggml: each offset is the previous one plus its padded size; llama.cpp: the data fits the file."""
    expected = 0
    for slot in slots:
        if slot.offset != expected:
            raise cur.fail(f"tensor {slot.name} has data offset {slot.offset:,}, expected {expected:,} "
                           f"(tensors follow one another at the {alignment}-byte alignment)")
        end = data_start + slot.offset + slot.nbytes
        if end > len(cur.buf):
            raise cur.fail(f"the data of tensor {slot.name} ({slot.type.name} {list(slot.shape)}) ends at byte "
                           f"{end:,}, past the end of the file ({len(cur.buf):,} bytes): the file is truncated "
                           "or its header is wrong")
        expected += slot.nbytes + (-slot.nbytes % alignment)


class GGUFFile:
    """A GGUF that ggml would load, read through gguf-py."""

    def __init__(self, path: Path, layout: GGUFLayout, reader: GGUFReader):
        self.path, self.layout, self.reader = path, layout, reader
        self.fields = reader.fields
        self.tensors = reader.tensors

    @property
    def architecture(self) -> str | None:
        return self.value("general.architecture")

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def value(self, key: str, default: Any = None) -> Any:
        """The decoded value of ``key`` (strings as str, arrays as lists), or ``default``."""
        field = self.fields.get(key)
        if field is None:
            return default
        try:
            return field.contents()
        except UnicodeDecodeError:
            raise GGUFFileError(f"{self.path}: the value of {key} is not UTF-8 text") from None

    def array_length(self, key: str) -> int:
        field = self.fields.get(key)
        return 0 if field is None else len(field.data)

    def raw_kv(self) -> dict[str, GGUFValue]:
        """Every key-value in file order with its exact GGUF types; strings as raw bytes."""
        return {f.name: _raw_value(f) for f in self.fields.values() if not f.name.startswith("GGUF.")}


def _raw_value(field) -> GGUFValue:
    main = field.types[0]
    if main == GGUFValueType.ARRAY:
        sub = GGUFValueType(int(field.parts[3][0]))  # parts: key length, key, type, item type, count, ...
        if sub == GGUFValueType.STRING:
            values = [bytes(field.parts[i]) for i in field.data]
        else:
            values = [field.parts[i].tolist()[0] for i in field.data]
        return GGUFValue(values, main, sub)
    if main == GGUFValueType.STRING:
        return GGUFValue(bytes(field.parts[-1]), main)
    return GGUFValue(field.parts[-1].tolist()[0], main)


def open_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """``path`` as a GGUF ggml would load, or a GGUFFileError saying why it would not."""
    path = Path(path)
    if not path.is_file():
        raise GGUFFileError(f"{path} does not exist (or is not a file)")
    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size < 24:
                raise GGUFFileError(f"{path} is not a GGUF file (shorter than a GGUF header)")
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                layout = read_layout(buf, path)
        reader = GGUFReader(path)
    except OSError as exc:
        raise GGUFFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, IndexError) as exc:  # what gguf-py raises on what ggml accepts
        raise GGUFFileError(f"{path} is not a readable GGUF file: {exc}") from exc
    return GGUFFile(path, layout, reader)
