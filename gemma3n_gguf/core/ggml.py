"""ggml's own quantization kernels, bound with ctypes from llama-cpp-python's libggml-base.

The k-quant arithmetic is never re-implemented here: ``ggml_quantize_chunk`` is the
reference, so the bytes equal llama-quantize's by construction. Rows are split into chunks
and run on a thread pool; ctypes releases the GIL for the duration of each C call. Every
block (and, with an imatrix, every row) is quantized independently, so chunking never
changes a byte.

F32, F16 and BF16 need no ggml: numpy reproduces ``ggml_fp32_to_fp16`` and
``ggml_compute_fp32_to_bf16`` exactly (NaN handling included).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.errors import QuantizationError, RuntimeUnavailableError

# Types whose kernels this package calls (everything a scheme, a rule or a fallback can pick).
KERNEL_TYPES: frozenset[T] = frozenset({
    T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
    T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K,
    T.IQ4_NL, T.IQ4_XS,
})
FLOAT_TYPES: frozenset[T] = frozenset({T.F32, T.F16, T.BF16})
SUPPORTED_TYPES: frozenset[T] = KERNEL_TYPES | FLOAT_TYPES

# llama-quantize hands ggml chunks of at least this many values (whole rows).
MIN_CHUNK_VALUES = 16384
# Chunks per thread: enough to balance uneven kernels, few enough that Python overhead is nil.
_CHUNKS_PER_THREAD = 8

_FLOAT_P = ctypes.POINTER(ctypes.c_float)


class GGMLLibrary:
    """The handful of libggml-base functions this package needs, with argtypes declared."""

    def __init__(self, path: Path):
        try:
            self._lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise RuntimeUnavailableError(
                f"cannot load {path}: {exc}; reinstall llama-cpp-python==0.3.36") from exc
        self.path = path
        self._declare()
        self._check_type_table()

    def _declare(self) -> None:
        lib = self._lib
        sig = {
            "ggml_quantize_chunk": (ctypes.c_size_t, [ctypes.c_int, _FLOAT_P, ctypes.c_void_p,
                                    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, _FLOAT_P]),
            "ggml_quantize_requires_imatrix": (ctypes.c_bool, [ctypes.c_int]),
            "ggml_quantize_init": (None, [ctypes.c_int]),
            "ggml_row_size": (ctypes.c_size_t, [ctypes.c_int, ctypes.c_int64]),
            "ggml_blck_size": (ctypes.c_int64, [ctypes.c_int]),
            "ggml_type_size": (ctypes.c_size_t, [ctypes.c_int]),
            "ggml_validate_row_data": (ctypes.c_bool, [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]),
            "ggml_fp32_to_fp16_row": (None, [_FLOAT_P, ctypes.c_void_p, ctypes.c_int64]),
            "ggml_fp32_to_bf16_row": (None, [_FLOAT_P, ctypes.c_void_p, ctypes.c_int64]),
            "ggml_fp32_to_bf16_row_ref": (None, [_FLOAT_P, ctypes.c_void_p, ctypes.c_int64]),
        }
        for name, (restype, argtypes) in sig.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise RuntimeUnavailableError(
                    f"{self.path} lacks {name}; install llama-cpp-python==0.3.36") from None
            fn.restype, fn.argtypes = restype, argtypes

    def _check_type_table(self) -> None:
        # gguf-py's enum numbers must name the same layouts as this libggml build.
        for qtype in SUPPORTED_TYPES:
            block, type_size = GGML_QUANT_SIZES[qtype]
            if (self.block_size(qtype), self.type_size(qtype)) != (block, type_size):
                raise RuntimeUnavailableError(
                    f"{self.path} disagrees with gguf-py about {qtype.name}; "
                    "install matching versions (gguf==0.19.0, llama-cpp-python==0.3.36)")

    def block_size(self, qtype: T) -> int:
        return int(self._lib.ggml_blck_size(int(qtype)))

    def type_size(self, qtype: T) -> int:
        return int(self._lib.ggml_type_size(int(qtype)))

    def row_size(self, qtype: T, n_per_row: int) -> int:
        return int(self._lib.ggml_row_size(int(qtype), n_per_row))

    def requires_imatrix(self, qtype: T) -> bool:
        return bool(self._lib.ggml_quantize_requires_imatrix(int(qtype)))

    def quantize_init(self, qtype: T) -> None:
        self._lib.ggml_quantize_init(int(qtype))

    def quantize_chunk(self, qtype: T, src: np.ndarray, dst: np.ndarray,
                       imatrix: np.ndarray | None) -> int:
        """One raw ``ggml_quantize_chunk`` call over all rows of ``src`` (C-contiguous f32 2-D)."""
        n_rows, n_per_row = src.shape
        imatrix_p = imatrix.ctypes.data_as(_FLOAT_P) if imatrix is not None else None
        return int(self._lib.ggml_quantize_chunk(
            int(qtype), src.ctypes.data_as(_FLOAT_P), dst.ctypes.data, 0, n_rows, n_per_row, imatrix_p))

    def dequantize(self, qtype: T, data: np.ndarray, n_per_row: int) -> np.ndarray:
        """Packed ``qtype`` rows back to float32 (n_rows, n_per_row), with ggml's ``to_float``."""
        if qtype not in KERNEL_TYPES:
            raise QuantizationError(f"cannot read {qtype.name} tensors; supported: "
                                    + ", ".join(sorted(t.name for t in SUPPORTED_TYPES)))
        fn = getattr(self._lib, f"dequantize_row_{qtype.name.lower().replace('_k', '_K')}")
        fn.restype, fn.argtypes = None, [ctypes.c_void_p, _FLOAT_P, ctypes.c_int64]
        src = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        n_rows = src.size // self.row_size(qtype, n_per_row)
        out = np.empty((n_rows, n_per_row), dtype=np.float32)
        fn(src.ctypes.data, out.ctypes.data_as(_FLOAT_P), out.size)
        return out

    def validate_row_data(self, qtype: T, data: np.ndarray) -> bool:
        return bool(self._lib.ggml_validate_row_data(int(qtype), data.ctypes.data, data.nbytes))

    def fp32_to_fp16_row(self, values: np.ndarray) -> np.ndarray:
        return self._convert_row(self._lib.ggml_fp32_to_fp16_row, values)

    def fp32_to_bf16_row(self, values: np.ndarray, reference: bool = False) -> np.ndarray:
        fn = self._lib.ggml_fp32_to_bf16_row_ref if reference else self._lib.ggml_fp32_to_bf16_row
        return self._convert_row(fn, values)

    @staticmethod
    def _convert_row(fn, values: np.ndarray) -> np.ndarray:
        src = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        out = np.empty(src.size, dtype=np.uint16)
        fn(src.ctypes.data_as(_FLOAT_P), out.ctypes.data, src.size)
        return out


def _library_file(lib_dir: Path) -> Path:
    names = {"win32": "ggml-base.dll", "darwin": "libggml-base.dylib"}
    return lib_dir / names.get(sys.platform, "libggml-base.so")


@functools.cache
def ggml_library() -> GGMLLibrary:
    """libggml-base from the installed llama-cpp-python (loaded once, without importing llama_cpp)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailableError(
            "llama-cpp-python is not installed; its ggml kernels do the quantizing: "
            "pip install llama-cpp-python==0.3.36")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = _library_file(package_dir / "lib")
    if not path.is_file():
        raise RuntimeUnavailableError(
            f"{path} not found: this llama-cpp-python install ships no libggml-base; "
            "reinstall llama-cpp-python==0.3.36 from the official wheel or sdist")
    return GGMLLibrary(path)


# -- float types in numpy ------------------------------------------------------------------

def fp32_to_fp16(values: np.ndarray) -> np.ndarray:
    """``GGML_FP32_TO_FP16`` as uint16 words: round-to-nearest-even; NaN -> sign|0x7E00."""
    bits = values.view(np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is the intended result
        half = values.astype(np.float16).view(np.uint16)
    is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
    if is_nan.any():
        quiet = ((bits >> 16) & 0x8000).astype(np.uint16) | np.uint16(0x7E00)
        half = np.where(is_nan, quiet, half)
    return half


def fp32_to_bf16(values: np.ndarray) -> np.ndarray:
    """``ggml_compute_fp32_to_bf16`` as uint16 words: round-to-nearest-even; NaN kept, made quiet."""
    bits = values.view(np.uint32)
    # Wraps only for NaN inputs, which the np.where below replaces.
    rounded = ((bits + (np.uint32(0x7FFF) + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
    if is_nan.any():
        quiet = ((bits >> 16) | 0x40).astype(np.uint16)
        rounded = np.where(is_nan, quiet, rounded)
    return rounded


def _float_rows(rows: np.ndarray, qtype: T) -> np.ndarray:
    if qtype == T.F32:
        out = rows.copy()
    elif qtype == T.F16:
        out = fp32_to_fp16(rows)
    else:
        out = fp32_to_bf16(rows)
    return out.view(np.uint8).reshape(rows.shape[0], -1)


# -- the public entry point ----------------------------------------------------------------

def quantize_rows(rows: np.ndarray, qtype: T, imatrix: np.ndarray | None = None,
                  threads: int | None = None) -> np.ndarray:
    """Quantize ``rows`` (n_rows, n_per_row) to ``qtype``; returns uint8 (n_rows, row_size).

    ``imatrix`` holds one normalized importance per column (n_per_row,), as llama-quantize
    passes it; types without an imatrix path ignore it. ``threads`` defaults to the usable
    cores. The bytes equal one ``ggml_quantize_chunk`` call over all rows.
    """
    qtype = T(qtype)
    rows = _checked_rows(rows)
    if qtype not in SUPPORTED_TYPES:
        names = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))
        raise QuantizationError(f"tensor type {qtype.name} is not supported; use one of: {names}")
    if qtype in FLOAT_TYPES:
        out = _float_rows(rows, qtype)
        _check_finite_floats(out, qtype)
        return out
    lib = ggml_library()
    n_rows, n_per_row = rows.shape
    _check_row_length(lib, qtype, n_per_row)
    imatrix = _checked_imatrix(imatrix, n_per_row)
    if imatrix is None and lib.requires_imatrix(qtype):
        raise QuantizationError(f"{qtype.name} cannot be produced without an importance matrix (--imatrix)")
    out = np.empty((n_rows, lib.row_size(qtype, n_per_row)), dtype=np.uint8)
    if n_rows == 0:
        return out
    lib.quantize_init(qtype)  # builds lookup grids once, before threads race for them
    n_threads = thread_count(threads)
    run = functools.partial(_quantize_span, lib, qtype, rows, out, imatrix)
    spans = _row_spans(n_rows, n_per_row, n_threads)
    if n_threads == 1 or len(spans) == 1:
        run((0, n_rows))
    else:
        list(_pool(n_threads).map(run, spans))
    return out


def _quantize_span(lib: GGMLLibrary, qtype: T, rows: np.ndarray, out: np.ndarray,
                   imatrix: np.ndarray | None, span: tuple[int, int]) -> None:
    start, stop = span
    dst = out[start:stop]
    written = lib.quantize_chunk(qtype, rows[start:stop], dst, imatrix)
    if written != dst.nbytes:
        raise QuantizationError(f"ggml wrote {written} bytes for rows {start}-{stop}, expected {dst.nbytes}")
    if not lib.validate_row_data(qtype, dst):
        raise QuantizationError(
            f"{qtype.name} data of rows {start}-{stop - 1} failed ggml's validation "
            "(NaN or Inf in the weights?)")


def _checked_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 2:
        raise QuantizationError(f"expected a 2-D array of rows, got shape {rows.shape}")
    if not np.issubdtype(rows.dtype, np.floating):
        raise QuantizationError(f"expected floating-point rows, got {rows.dtype}")
    return np.ascontiguousarray(rows, dtype=np.float32)


def _check_row_length(lib: GGMLLibrary, qtype: T, n_per_row: int) -> None:
    block = lib.block_size(qtype)
    if n_per_row % block:
        raise QuantizationError(
            f"rows of {n_per_row} values cannot be stored as {qtype.name}, whose blocks hold {block} "
            f"values; pick a type with a block size dividing {n_per_row} (e.g. Q8_0 for multiples of 32)")


def _checked_imatrix(imatrix: np.ndarray | None, n_per_row: int) -> np.ndarray | None:
    if imatrix is None:
        return None
    imatrix = np.ascontiguousarray(imatrix, dtype=np.float32).reshape(-1)
    if imatrix.size != n_per_row:
        raise QuantizationError(f"imatrix has {imatrix.size} values but rows have {n_per_row}")
    if not np.isfinite(imatrix).all():
        raise QuantizationError("imatrix contains NaN or Inf values")
    return imatrix


def _check_finite_floats(out: np.ndarray, qtype: T) -> None:
    # llama-quantize rejects NaN/Inf in converted data (ggml_validate_row_data).
    if qtype == T.F32:
        values = out.view(np.float32)
    elif qtype == T.F16:
        values = out.view(np.float16)
    else:
        values = (out.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if not np.isfinite(values).all():
        raise QuantizationError(f"{qtype.name} data contains NaN or Inf (out of range for {qtype.name}?)")


def thread_count(threads: int | None) -> int:
    """``threads``, checked; by default the cores this process may use."""
    if threads is not None:
        if threads < 1:
            raise QuantizationError(f"threads must be at least 1, got {threads}")
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _row_spans(n_rows: int, n_per_row: int, threads: int) -> list[tuple[int, int]]:
    min_rows = math.ceil(MIN_CHUNK_VALUES / n_per_row)
    rows_per_chunk = max(min_rows, math.ceil(n_rows / (threads * _CHUNKS_PER_THREAD)))
    return [(start, min(start + rows_per_chunk, n_rows)) for start in range(0, n_rows, rows_per_chunk)]


@functools.cache  # one pool per thread count, alive for the process (a few counts at most)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ggml-quantize")
