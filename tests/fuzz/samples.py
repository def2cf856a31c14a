"""Small valid files to damage, where their header fields lie, and ggml's own GGUF reader as the judge."""

from __future__ import annotations

import ctypes
import functools
import struct
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from safetensors.numpy import save

from gemma3n_gguf.core.ggml import ggml_library
from gemma3n_gguf.quantize.imatrix import Imatrix, ImatrixEntry, write_imatrix_gguf


def safetensors_bytes() -> bytes:
    return save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, dtype=np.float16)},
                metadata={"format": "pt"})


def gguf_bytes(tmp: Path) -> bytes:
    """A gemma3n-labelled GGUF with scalar, string and array keys and F32, F16 and Q8_0 tensors."""
    path = tmp / "sample.gguf"
    writer = GGUFWriter(path, "gemma3n")
    writer.add_name("sample")
    writer.add_uint32("gemma3n.block_count", 2)
    writer.add_array("gemma3n.values", [1.0, 2.0, 3.0])
    writer.add_array("tokenizer.ggml.tokens", ["<pad>", "a", "b"])
    writer.add_tensor("a", np.arange(32, dtype=np.float32).reshape(4, 8))
    writer.add_tensor("b", np.ones((3, 5), dtype=np.float16))
    q8 = np.zeros((2, 34), dtype=np.uint8)  # two Q8_0 blocks of 32 values: scale (f16) + 32 int8
    q8[:, 1] = 0x3C  # scale 1.0
    writer.add_tensor("c", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def header_fields(path: Path) -> list[tuple[int, int]]:
    """(offset, size) of every header field of a valid GGUF: counts, lengths, types, dims, offsets."""
    reader = GGUFReader(path)
    base = reader.data.ctypes.data
    fields = [*reader.fields.values(), *(t.field for t in reader.tensors)]
    return sorted({(part.ctypes.data - base, part.nbytes) for f in fields for part in f.parts
                   if 0 < part.nbytes <= 8})


def imatrix_gguf_bytes(tmp: Path) -> bytes:
    imatrix = Imatrix({"blk.0.ffn_up.weight": ImatrixEntry(np.ones((1, 8), np.float32), np.array([3]))},
                      datasets=["calibration.txt"], chunk_count=2, chunk_size=64)
    write_imatrix_gguf(tmp / "sample.imatrix.gguf", imatrix)
    return (tmp / "sample.imatrix.gguf").read_bytes()


def imatrix_dat_bytes() -> bytes:
    name = b"blk.0.ffn_up.weight"
    values = np.arange(1, 5, dtype="<f4").tobytes()
    trailer = struct.pack("<i", 7) + struct.pack("<i", 4) + b"wiki"
    return struct.pack("<i", 1) + struct.pack("<i", len(name)) + name + struct.pack("<ii", 2, 4) + values + trailer


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.cache
def _gguf_api():
    lib = ctypes.CDLL(str(ggml_library().path))
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _InitParams]
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    for name in ("gguf_get_n_tensors",):
        getattr(lib, name).restype = ctypes.c_int64
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.gguf_get_data_offset.restype = ctypes.c_size_t
    lib.gguf_get_data_offset.argtypes = [ctypes.c_void_p]
    for name in ("gguf_get_tensor_offset", "gguf_get_tensor_size"):
        getattr(lib, name).restype = ctypes.c_size_t
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int64]
    return lib


def ggml_would_load(path: Path) -> bool:
    """ggml's ``gguf_init_from_file`` accepts the file, and (llama.cpp's loader check) every tensor's
    data lies inside it."""
    lib = _gguf_api()
    ctx = lib.gguf_init_from_file(str(path).encode(), _InitParams(True, None))
    if not ctx:
        return False
    try:
        size = path.stat().st_size
        start = lib.gguf_get_data_offset(ctx)
        return all(start + lib.gguf_get_tensor_offset(ctx, i) + lib.gguf_get_tensor_size(ctx, i) <= size
                   for i in range(lib.gguf_get_n_tensors(ctx)))
    finally:
        lib.gguf_free(ctx)
