"""The two-step reference: llama.cpp's own code, driven the way llama-quantize's CLI drives it.

* :func:`read_imatrix_with_ggml` parses an imatrix file with ggml's C GGUF reader (not gguf-py, not
  our reader) and normalizes it as ``tools/quantize/quantize.cpp::load_imatrix`` does.
* :func:`llama_quantize` calls ``llama_model_quantize`` with that data and the CLI's
  ``quantize.imatrix.*`` key-value overrides, plus the per-tensor options.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.ggml import ggml_library
from gemma3n_gguf.engine.schemes import SCHEMES

_GGUF_TYPE_F32 = 0  # GGML_TYPE_F32


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


def _gguf_api() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(ggml_library().path))
    sig = {
        "gguf_init_from_file": (ctypes.c_void_p, [ctypes.c_char_p, _InitParams]),
        "gguf_free": (None, [ctypes.c_void_p]),
        "gguf_find_key": (ctypes.c_int64, [ctypes.c_void_p, ctypes.c_char_p]),
        "gguf_get_val_u32": (ctypes.c_uint32, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_arr_n": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_arr_str": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t]),
        "gguf_get_val_str": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_n_tensors": (ctypes.c_int64, [ctypes.c_void_p]),
        "gguf_get_tensor_name": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_type": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_offset": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_size": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_data_offset": (ctypes.c_size_t, [ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


@dataclass
class GGMLImatrix:
    """An imatrix as llama-quantize's CLI holds it after loading: normalized values per weight."""

    values: dict[str, np.ndarray]
    datasets: list[str]
    chunk_count: int
    chunk_size: int
    raw: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (sums, counts)


def read_imatrix_with_ggml(path: Path) -> GGMLImatrix:
    lib = _gguf_api()
    ctx = lib.gguf_init_from_file(str(path).encode(), _InitParams(True, None))
    assert ctx, f"ggml cannot parse {path}"
    try:
        def key(name: str) -> int:
            found = lib.gguf_find_key(ctx, name.encode())
            assert found >= 0, f"{path} lacks {name}"
            return found

        datasets_id = key("imatrix.datasets")
        datasets = [lib.gguf_get_arr_str(ctx, datasets_id, i).decode() for i in range(lib.gguf_get_arr_n(ctx, datasets_id))]
        chunk_count = lib.gguf_get_val_u32(ctx, key("imatrix.chunk_count"))
        chunk_size = lib.gguf_get_val_u32(ctx, key("imatrix.chunk_size"))
        assert lib.gguf_get_val_str(ctx, key("general.type")) == b"imatrix"
        data_offset = lib.gguf_get_data_offset(ctx)
        blob = path.read_bytes()
        tensors = {}
        for i in range(lib.gguf_get_n_tensors(ctx)):
            assert lib.gguf_get_tensor_type(ctx, i) == _GGUF_TYPE_F32
            start = data_offset + lib.gguf_get_tensor_offset(ctx, i)
            size = lib.gguf_get_tensor_size(ctx, i)
            tensors[lib.gguf_get_tensor_name(ctx, i).decode()] = np.frombuffer(blob[start:start + size], dtype="<f4")
    finally:
        lib.gguf_free(ctx)
    raw, values = {}, {}
    for name in sorted(n[: -len(".in_sum2")] for n in tensors if n.endswith(".in_sum2")):
        sums, counts = tensors[name + ".in_sum2"], tensors[name + ".counts"]
        raw[name] = (sums, counts)
        per_matrix = sums.reshape(len(counts), -1)
        # quantize.cpp: e = sums / (float) lround(count); 1 where the count is 0
        rounded = np.array([np.float32(int(np.floor(abs(c) + 0.5)) * (1 if c >= 0 else -1)) for c in counts])
        values[name] = np.concatenate([row / c if c > 0 else np.ones_like(row)
                                       for row, c in zip(per_matrix, rounded)]).astype(np.float32)
    return GGMLImatrix(values, datasets, int(chunk_count), int(chunk_size), raw)


def read_legacy_dat(path: Path) -> GGMLImatrix:
    """A legacy ``.dat`` imatrix, normalized as quantize.cpp does: value / ncall (value if ncall <= 0)."""
    blob, pos = path.read_bytes(), 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from(fmt, blob, pos)
        pos += struct.calcsize(fmt)
        return values

    values = {}
    for _ in range(take("<i")[0]):
        name = take(f"<{take('<i')[0]}s")[0].decode()
        ncall, nval = take("<ii")
        raw = np.array(take(f"<{nval}f"), dtype=np.float32)
        values[name] = raw / np.float32(ncall) if ncall > 0 else raw
    chunk_count, datasets = 0, []
    if pos < len(blob):
        chunk_count = take("<i")[0]
        datasets = [take(f"<{take('<i')[0]}s")[0].decode()]
    return GGMLImatrix(values, datasets, chunk_count, 0)


@dataclass
class LlamaOptions:
    tensor_type: Sequence[tuple[str, T]] = ()
    token_embedding_type: T | None = None
    output_tensor_type: T | None = None
    pure: bool = False
    allow_requantize: bool = False


def llama_quantize(source: Path, out: Path, scheme: str, imatrix_file: str | None = None,
                   options: LlamaOptions = LlamaOptions()) -> int:
    """``llama-quantize [options] [--imatrix FILE] source out SCHEME 2``; returns its status (0 = ok)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(SCHEMES[scheme].ftype)
    params.nthread = 2
    params.pure = options.pure
    params.allow_requantize = options.allow_requantize
    if options.token_embedding_type is not None:
        params.token_embedding_type = int(options.token_embedding_type)
    if options.output_tensor_type is not None:
        params.output_tensor_type = int(options.output_tensor_type)
    keep_alive: list = []
    if options.tensor_type:
        table = (llama_cpp.llama_model_tensor_override * (len(options.tensor_type) + 1))()
        for slot, (pattern, qtype) in zip(table, options.tensor_type):
            encoded = pattern.lower().encode()
            keep_alive.append(encoded)
            slot.pattern, slot.type = encoded, int(qtype)
        table[len(options.tensor_type)].pattern = None
        params.tt_overrides = table
    if imatrix_file is not None:
        is_gguf = Path(imatrix_file).read_bytes()[:4] == b"GGUF"
        loaded = (read_imatrix_with_ggml if is_gguf else read_legacy_dat)(Path(imatrix_file))
        params.imatrix = _imatrix_table(loaded.values, keep_alive)
        params.kv_overrides = _imatrix_kv(imatrix_file, loaded, keep_alive)
    return llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))


def _imatrix_table(values: dict[str, np.ndarray], keep_alive: list):
    table = (llama_cpp.llama_model_imatrix_data * (len(values) + 1))()
    for slot, (name, row) in zip(table, values.items()):
        row = np.ascontiguousarray(row, dtype=np.float32)
        encoded = name.encode()
        keep_alive += [row, encoded]
        slot.name, slot.size = encoded, row.size
        slot.data = row.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    table[len(values)].name = None
    keep_alive.append(table)
    return table


def _imatrix_kv(file_name: str, loaded: GGMLImatrix, keep_alive: list):
    """The overrides quantize.cpp appends, in its order: file, first dataset, entries, chunks."""
    items: list[tuple[str, str | int]] = [("quantize.imatrix.file", file_name[:127])]
    if loaded.datasets:
        items.append(("quantize.imatrix.dataset", loaded.datasets[0][:127]))
    items.append(("quantize.imatrix.entries_count", len(loaded.values)))
    if loaded.chunk_count > 0:
        items.append(("quantize.imatrix.chunks_count", loaded.chunk_count))
    table = (llama_cpp.llama_model_kv_override * (len(items) + 1))()
    for slot, (name, value) in zip(table, items):
        slot.key = name.encode()
        if isinstance(value, str):
            slot.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
            slot.value.val_str = value.encode()
        else:
            slot.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
            slot.value.val_i64 = value
    table[len(items)].key = b""
    keep_alive.append(table)
    return table
