"""quantize_rows: threaded chunks equal one ggml call; numpy float paths equal ggml's; errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import quants

from gemma3n_gguf.core.errors import QuantizationError, RuntimeUnavailableError
from gemma3n_gguf.core import ggml
from gemma3n_gguf.core.ggml import KERNEL_TYPES, fp32_to_bf16, fp32_to_fp16, ggml_library, quantize_rows
from gemma3n_gguf.engine.planner import plan_types
from gemma3n_gguf.engine.rules import shape_fallback
from gemma3n_gguf.engine.schemes import SCHEMES

from .gemma3n_layout import E2B, text_tensors

RNG = np.random.default_rng(1234)


def _rows(n_rows: int, n_per_row: int) -> np.ndarray:
    rows = RNG.standard_normal((n_rows, n_per_row)).astype(np.float32) * 0.02
    rows[::5, ::7] *= 40  # outliers, as real weights have
    return rows


def _imatrix(n_per_row: int) -> np.ndarray:
    return RNG.uniform(0.01, 3.0, n_per_row).astype(np.float32)


def _one_ggml_call(rows: np.ndarray, qtype: T, imatrix: np.ndarray | None) -> np.ndarray:
    lib = ggml_library()
    out = np.empty((rows.shape[0], lib.row_size(qtype, rows.shape[1])), dtype=np.uint8)
    assert lib.quantize_chunk(qtype, rows, out, imatrix) == out.nbytes
    return out


@pytest.mark.parametrize("with_imatrix", [False, True], ids=["ref", "imatrix"])
@pytest.mark.parametrize("qtype", sorted(KERNEL_TYPES, key=int), ids=lambda t: t.name)
def test_threaded_chunks_equal_one_ggml_call(qtype, with_imatrix, monkeypatch):
    rows = _rows(37, 512)
    imatrix = _imatrix(512) if with_imatrix else None
    monkeypatch.setattr(ggml, "MIN_CHUNK_VALUES", 1)  # one or two rows per chunk: many chunks
    assert len(ggml._row_spans(37, 512, 2)) > 8
    threaded = quantize_rows(rows, qtype, imatrix, threads=2)
    assert np.array_equal(threaded, _one_ggml_call(rows, qtype, imatrix))


@pytest.mark.parametrize("qtype", [T.Q4_0, T.Q4_K, T.Q6_K], ids=lambda t: t.name)
def test_imatrix_changes_the_bytes(qtype):
    # Guards the test above: it would pass vacuously if the imatrix were dropped on the way.
    rows = _rows(8, 512)
    assert not np.array_equal(quantize_rows(rows, qtype), quantize_rows(rows, qtype, _imatrix(512)))


def _float_patterns() -> np.ndarray:
    special = np.array([
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # zeros, infinities
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FBFFFFF, 0x7FFFFFFF, 0xFFFFFFFF,  # NaNs
        0x00000001, 0x807FFFFF, 0x00008000, 0x00018000, 0x3F808000, 0x3F818000, 0x3F807FFF,  # ties, subnormals
        0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x477FF000, 0x477FEFFF, 0x38800000, 0x33800000, 0x33000001,
    ], dtype=np.uint32)
    random_bits = RNG.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([special, random_bits]).view(np.float32)


def test_bf16_rounding_equals_ggml():
    values = _float_patterns()
    ours = fp32_to_bf16(values)
    assert np.array_equal(ours, ggml_library().fp32_to_bf16_row(values))
    assert np.array_equal(ours, ggml_library().fp32_to_bf16_row(values, reference=True))  # quantize_chunk's


def test_fp16_conversion_equals_ggml():
    values = _float_patterns()
    assert np.array_equal(fp32_to_fp16(values), ggml_library().fp32_to_fp16_row(values))


@pytest.mark.parametrize("qtype", [T.F16, T.BF16, T.F32], ids=lambda t: t.name)
def test_float_types_equal_ggml_quantize_chunk(qtype):
    rows = _float_patterns()[: 64 * 1024].reshape(64, 1024)
    rows = np.where(np.isfinite(rows) & (np.abs(rows) < 6e4), rows, np.float32(1.5))
    assert np.array_equal(quantize_rows(rows, qtype), _one_ggml_call(rows, qtype, None))


# Relative RMS error bounds, about 1.5x what each type reaches on these rows; garbage bytes give ~1.
MAX_RELATIVE_ERROR = {
    T.F32: 0.0, T.F16: 1e-3, T.BF16: 5e-3, T.Q8_0: 0.01, T.Q6_K: 0.03, T.Q5_K: 0.06, T.Q5_0: 0.06,
    T.Q5_1: 0.06, T.Q4_K: 0.12, T.Q4_0: 0.13, T.Q4_1: 0.12, T.IQ4_NL: 0.12, T.IQ4_XS: 0.12,
    T.Q3_K: 0.25, T.Q2_K: 0.45,
}


def _types_of_scheme(scheme: str) -> set[T]:
    tensors = text_tensors(E2B, matrix_type=T.F32)
    chosen = {c.qtype for t, c in zip(tensors, plan_types(tensors, scheme)) if c.qtype != t.source_type}
    return chosen | {shape_fallback(q, 32) for q in chosen}  # the types narrow rows fall back to


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_preset_kernel_round_trips(scheme):
    rows = RNG.standard_normal((8, 512)).astype(np.float32)
    for qtype in sorted(_types_of_scheme(scheme), key=int):
        for imatrix in (None, _imatrix(512)):
            packed = quantize_rows(rows, qtype, imatrix, threads=2)
            block, type_size = quants.GGML_QUANT_SIZES[qtype]
            assert packed.shape == (8, 512 // block * type_size)
            restored = quants.dequantize(packed, qtype).reshape(rows.shape)
            error = np.sqrt(np.mean((restored - rows) ** 2) / np.mean(rows**2))
            assert error <= MAX_RELATIVE_ERROR[qtype], (qtype.name, error)


def test_row_length_must_fit_the_block():
    with pytest.raises(QuantizationError, match="blocks hold 256"):
        quantize_rows(_rows(2, 320), T.Q4_K)
    quantize_rows(_rows(2, 320), T.Q8_0)  # 320 = 10 blocks of 32


@pytest.mark.parametrize("bad, message", [
    (np.ones(100, np.float32), "has 100 values"),
    (np.full(256, np.nan, np.float32), "NaN"),
])
def test_bad_imatrix_is_an_error(bad, message):
    with pytest.raises(QuantizationError, match=message):
        quantize_rows(_rows(2, 256), T.Q4_K, bad)


def test_other_bad_input_is_an_error():
    with pytest.raises(QuantizationError, match="2-D"):
        quantize_rows(np.zeros(256, np.float32), T.Q4_K)
    with pytest.raises(QuantizationError, match="floating-point"):
        quantize_rows(np.zeros((1, 256), np.int32), T.Q4_K)
    with pytest.raises(QuantizationError, match="not supported"):
        quantize_rows(_rows(1, 256), T.IQ2_XXS)
    with pytest.raises(QuantizationError, match="NaN or Inf"):
        quantize_rows(np.full((1, 32), 1e6, np.float32), T.F16)  # overflows f16, as ggml validation rejects
    with pytest.raises(QuantizationError, match="threads"):
        quantize_rows(_rows(1, 256), T.Q4_K, threads=0)


def test_missing_llama_cpp_python_is_reported(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a))
    ggml.ggml_library.cache_clear()
    try:
        with pytest.raises(RuntimeUnavailableError, match="pip install llama-cpp-python"):
            quantize_rows(_rows(1, 256), T.Q4_K)
        assert quantize_rows(_rows(1, 256), T.F16).shape == (1, 512)  # float types need no ggml
    finally:
        ggml.ggml_library.cache_clear()


def test_empty_input_gives_empty_output():
    assert quantize_rows(np.zeros((0, 256), np.float32), T.Q4_K).shape == (0, 144)
