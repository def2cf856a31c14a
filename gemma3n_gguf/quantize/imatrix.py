"""Importance matrices: llama.cpp's GGUF and legacy ``.dat`` files, read, normalized and written.

Normalization follows llama-quantize's CLI (``tools/quantize/quantize.cpp::load_imatrix``),
not the library, which takes already-normalized means:

* GGUF: ``value = in_sum2 / (float)lround(count)`` per matrix, in float32; a matrix with a
  zero count gets 1.0 everywhere.
* legacy ``.dat``: values were stored as ``(sum/count)*ncall``; ``value = stored / ncall``,
  or the stored value when ``ncall <= 0``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter, Keys

from gemma3n_gguf.core.atomic import atomic_path
from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.core.gguf_read import GGUFFile, open_gguf
from gemma3n_gguf.engine.planner import TensorInfo
from gemma3n_gguf.engine.rules import TOKEN_EMBD_NAMES

KEY_DATASETS = "imatrix.datasets"
KEY_CHUNK_COUNT = "imatrix.chunk_count"
KEY_CHUNK_SIZE = "imatrix.chunk_size"
SUM_SUFFIX = ".in_sum2"
COUNT_SUFFIX = ".counts"
_MAX_KV_STRING = 127  # llama_model_kv_override.val_str holds 128 chars with the NUL


@dataclass
class ImatrixEntry:
    """Raw data for one weight: ``sums`` (n_mat, ne0) float32 and ``counts`` (n_mat,) int64.

    For a legacy file ``sums`` holds the stored values (1, nval) and ``counts`` is [ncall].
    """

    sums: np.ndarray
    counts: np.ndarray


@dataclass
class Imatrix:
    entries: dict[str, ImatrixEntry]
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    is_legacy: bool = False
    has_metadata: bool = True


# -- reading ---------------------------------------------------------------------------------

def read_imatrix(path: str | os.PathLike[str]) -> Imatrix:
    """Read a GGUF imatrix, or a legacy ``.dat`` one (the fallback, as in llama.cpp)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise QuantizationError(f"cannot read imatrix {path}: {exc.strerror or exc}") from exc
    return _read_gguf(path) if magic == b"GGUF" else _read_legacy(path)


def _read_gguf(path: Path) -> Imatrix:
    reader = open_gguf(path)
    kind = _typed_value(reader, Keys.General.TYPE, str)
    if kind is not None and kind != "imatrix":
        raise QuantizationError(f"{path} is a GGUF of type {kind!r}, not an imatrix")
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for tensor in reader.tensors:
        for suffix in (SUM_SUFFIX, COUNT_SUFFIX):
            if tensor.name.endswith(suffix):
                if tensor.tensor_type != T.F32:
                    raise QuantizationError(f"{path}: {tensor.name} must be F32, is {tensor.tensor_type.name}")
                base = tensor.name[: -len(suffix)]
                pairs.setdefault(base, {})[suffix] = np.array(tensor.data, dtype=np.float32).reshape(-1)
    if not reader.tensors:
        raise QuantizationError(f"{path} holds no imatrix data")
    entries = {name: _gguf_entry(path, name, parts) for name, parts in sorted(pairs.items())}
    datasets = _typed_value(reader, KEY_DATASETS, list)
    if datasets is not None and not all(isinstance(d, str) for d in datasets):
        raise QuantizationError(f"{path}: {KEY_DATASETS} must be an array of strings")
    chunk_count, chunk_size = _typed_value(reader, KEY_CHUNK_COUNT, int), _typed_value(reader, KEY_CHUNK_SIZE, int)
    return Imatrix(
        entries=entries,
        datasets=list(datasets or []),
        chunk_count=int(chunk_count or 0),
        chunk_size=int(chunk_size or 0),
        has_metadata=None not in (datasets, chunk_count, chunk_size),
    )


def _typed_value(reader: GGUFFile, key: str, kind: type):
    value = reader.value(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise QuantizationError(f"{reader.path}: {key} must be {'a list' if kind is list else kind.__name__}, "
                                f"not {type(value).__name__}")
    return value


def _gguf_entry(path: Path, name: str, parts: dict[str, np.ndarray]) -> ImatrixEntry:
    if SUM_SUFFIX not in parts or COUNT_SUFFIX not in parts:
        raise QuantizationError(f"{path}: {name} has sums without counts or counts without sums")
    if not np.isfinite(parts[COUNT_SUFFIX]).all():
        raise QuantizationError(f"{path}: the counts of {name} contain NaN or Inf; the imatrix is corrupt")
    counts = _lround(parts[COUNT_SUFFIX])
    sums = parts[SUM_SUFFIX]
    if len(counts) == 0 or sums.size % len(counts):
        raise QuantizationError(f"{path}: {name} has {sums.size} sums for {len(counts)} counts")
    return ImatrixEntry(sums.reshape(len(counts), -1), counts)


def _lround(values: np.ndarray) -> np.ndarray:
    """C ``lround``: halves away from zero."""
    return (np.sign(values) * np.floor(np.abs(values.astype(np.float64)) + 0.5)).astype(np.int64)


def _read_legacy(path: Path) -> Imatrix:
    data = path.read_bytes()
    pos = 0

    def skip(nbytes: int) -> int:
        """Where ``nbytes`` bytes begin; refuses to run past the end of the file."""
        nonlocal pos
        if nbytes > len(data) - pos:
            raise QuantizationError(f"{path} is neither a GGUF nor a complete legacy .dat imatrix")
        pos += nbytes
        return pos - nbytes

    def take(fmt: str) -> tuple:
        return struct.unpack_from(fmt, data, skip(struct.calcsize(fmt)))

    def text(length: int) -> str:
        start = skip(length)
        return data[start:start + length].split(b"\0", 1)[0].decode("utf-8", "replace")

    (n_entries,) = take("<i")
    if n_entries < 1:
        raise QuantizationError(f"{path} holds no imatrix data")
    entries: dict[str, ImatrixEntry] = {}
    for _ in range(n_entries):
        (length,) = take("<i")
        if length < 0:
            raise QuantizationError(f"{path} is neither a GGUF nor a legacy .dat imatrix")
        name = text(length)
        ncall, nval = take("<ii")
        if nval < 1:
            raise QuantizationError(f"{path}: entry {name!r} has no values")
        start = skip(4 * nval)
        values = np.frombuffer(data, dtype="<f4", count=nval, offset=start).astype(np.float32)
        entries[name] = ImatrixEntry(values.reshape(1, -1), np.array([ncall], dtype=np.int64))
    imatrix = Imatrix(entries, is_legacy=True, has_metadata=False)
    if pos + 4 <= len(data):  # optional trailer: chunk count, then the dataset name
        (imatrix.chunk_count,) = take("<i")
        if pos + 4 <= len(data):
            (length,) = take("<i")
            if length > 0 and pos + length <= len(data):
                imatrix.datasets.append(text(length))
    return imatrix


# -- normalizing -----------------------------------------------------------------------------

def normalize(imatrix: Imatrix) -> dict[str, np.ndarray]:
    """Per-column importance for each weight, flat float32, exactly as llama-quantize's CLI."""
    if not imatrix.is_legacy and not imatrix.has_metadata:
        raise QuantizationError(
            f"imatrix lacks the {KEY_DATASETS}/{KEY_CHUNK_COUNT}/{KEY_CHUNK_SIZE} metadata "
            "llama-quantize requires; regenerate it with a current llama-imatrix or gemma3n-gguf imatrix")
    values = {name: (_normalize_legacy(e) if imatrix.is_legacy else _normalize_gguf(e))
              for name, e in imatrix.entries.items()}
    for name, row in values.items():
        if not np.isfinite(row).all():
            raise QuantizationError(f"imatrix entry {name} contains NaN or Inf; the imatrix is corrupt")
    return values


def _normalize_gguf(entry: ImatrixEntry) -> np.ndarray:
    counts = entry.counts.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        means = entry.sums / np.where(counts > 0, counts, np.float32(1))
    return np.where(counts > 0, means, np.float32(1)).astype(np.float32).reshape(-1)


def _normalize_legacy(entry: ImatrixEntry) -> np.ndarray:
    ncall = int(entry.counts[0]) if entry.counts.size else 0
    values = entry.sums.reshape(-1)
    return (values / np.float32(ncall)).astype(np.float32) if ncall > 0 else values.copy()


def filter_entries(imatrix: Imatrix, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Imatrix:
    """``--include-weights`` / ``--exclude-weights``: keep or drop entries by substring."""
    if include and exclude:
        raise QuantizationError("use either include or exclude weight filters, not both")
    names = [n for n in imatrix.entries if not any(s in n for s in exclude)]
    if include:
        names = [n for n in names if any(s in n for s in include)]
    kept = {n: imatrix.entries[n] for n in names}
    return Imatrix(kept, list(imatrix.datasets), imatrix.chunk_count, imatrix.chunk_size,
                   imatrix.is_legacy, imatrix.has_metadata)


# -- matching an imatrix to a model ----------------------------------------------------------

@dataclass(frozen=True)
class ImatrixAssignment:
    """Importance per quantized tensor, and the quantized tensors that have none."""

    values: dict[str, np.ndarray]
    missing: list[str]


def assign_imatrix(values: Mapping[str, np.ndarray], tensors: Sequence[TensorInfo],
                   quantized: Collection[str]) -> ImatrixAssignment:
    """Check that ``values`` belong to this model and pick the entries of the ``quantized`` tensors.

    Names the model lacks, or sizes other than ne0*ne2, mean the imatrix was computed on
    another model. As in llama-quantize, token_embd/per_layer_token_embd run without
    an imatrix when their size differs, and a tensor without an entry (the K/V of Gemma 3n's
    KV-shared layers, which llama.cpp never computes) is quantized without one.
    """
    shapes = {t.name: t.shape for t in tensors}
    unknown = sorted(name for name in values if name not in shapes)
    if unknown:
        raise QuantizationError(
            f"imatrix was computed on another model: it has entries for {len(unknown)} tensors this "
            f"model lacks (e.g. {', '.join(unknown[:3])})")
    assigned: dict[str, np.ndarray] = {}
    for name, row in values.items():
        shape = shapes[name]
        expected = shape[0] * (shape[2] if len(shape) > 2 else 1)
        if row.size == expected:
            assigned[name] = row
        elif name not in TOKEN_EMBD_NAMES:
            raise QuantizationError(
                f"imatrix was computed on another model: {name} has {row.size} values, the tensor "
                f"needs {expected}")
    missing = [name for name in quantized if name not in assigned]
    return ImatrixAssignment({n: assigned[n] for n in quantized if n in assigned}, missing)


def quantize_metadata(imatrix: Imatrix, file_name: str, n_entries: int) -> list[tuple[str, str | int]]:
    """The ``quantize.imatrix.*`` keys llama-quantize's CLI appends (entries counted after filtering)."""
    keys: list[tuple[str, str | int]] = [("quantize.imatrix.file", file_name[:_MAX_KV_STRING])]
    if imatrix.datasets:
        keys.append(("quantize.imatrix.dataset", imatrix.datasets[0][:_MAX_KV_STRING]))
    keys.append(("quantize.imatrix.entries_count", n_entries))
    if imatrix.chunk_count > 0:
        keys.append(("quantize.imatrix.chunks_count", imatrix.chunk_count))
    return keys


# -- writing ---------------------------------------------------------------------------------

def write_imatrix_gguf(path: str | os.PathLike[str], imatrix: Imatrix) -> None:
    """Write ``imatrix`` (raw sums and counts) in llama-imatrix's GGUF layout, atomically."""
    if imatrix.is_legacy:
        raise QuantizationError("a legacy imatrix holds no raw sums and counts; it cannot be written as GGUF")
    if not imatrix.datasets:  # gguf-py cannot write an empty array, and readers need the key
        raise QuantizationError("an imatrix needs at least one dataset name (the calibration text)")
    with atomic_path(path) as tmp:
        writer = GGUFWriter(tmp, arch="imatrix")
        # An imatrix has no architecture; llama-imatrix writes none.
        writer.kv_data[0].pop(Keys.General.ARCHITECTURE, None)
        writer.add_type("imatrix")
        writer.add_array(KEY_DATASETS, list(imatrix.datasets))
        writer.add_uint32(KEY_CHUNK_COUNT, imatrix.chunk_count)
        writer.add_uint32(KEY_CHUNK_SIZE, imatrix.chunk_size)
        for name in sorted(imatrix.entries):
            entry = imatrix.entries[name]
            n_mat = len(entry.counts)
            writer.add_tensor(name + SUM_SUFFIX, np.asarray(entry.sums, dtype=np.float32).reshape(n_mat, -1))
            writer.add_tensor(name + COUNT_SUFFIX, entry.counts.astype(np.float32).reshape(n_mat, 1))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
