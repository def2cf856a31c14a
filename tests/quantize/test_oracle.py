"""Our plan and bytes against ``llama_cpp.llama_model_quantize`` on the same F32 GGUF.

The fixture ``tiny_text_f32_gguf`` (a Path to a tiny gemma3n text model in F32) is provided by
tests/conftest.py. Both sides get the same normalized imatrix; llama-quantize's CLI-only parts
(normalization, quantize.imatrix.* keys) are ours to reproduce and are not compared here.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.core.ggml import quantize_rows
from gemma3n_gguf.quantize.imatrix import (
    Imatrix,
    ImatrixEntry,
    assign_imatrix,
    normalize,
    read_imatrix,
    write_imatrix_gguf,
)
from gemma3n_gguf.engine.planner import (
    PlanOptions,
    TensorChoice,
    TensorInfo,
    check_imatrix_requirement,
    llama_order_key,
    plan_types,
)
from gemma3n_gguf.engine.schemes import SCHEMES

pytestmark = pytest.mark.slow

KV_FROM_START = 20  # llama.cpp's n_layer_kv_from_start for gemma3n: later layers never compute K/V


def gguf_tensors(path: Path) -> list[TensorInfo]:
    """The tensors of a GGUF file, shapes in ggml order."""
    return [TensorInfo(t.name, tuple(int(n) for n in t.shape), T(t.tensor_type)) for t in GGUFReader(path).tensors]


def gguf_tensor_bytes(path: Path) -> dict[str, tuple[T, bytes]]:
    return {t.name: (T(t.tensor_type), bytes(np.asarray(t.data).view(np.uint8).reshape(-1)))
            for t in GGUFReader(path).tensors}


def synthetic_imatrix(tensors: list[TensorInfo], choices: list[TensorChoice], path: Path) -> dict[str, np.ndarray]:
    """What llama-imatrix would record (quantized blk.* matmuls but the KV-shared K/V), via a GGUF file."""
    rng = np.random.default_rng(7)
    entries = {}
    for tensor, choice in zip(tensors, choices):
        parts = tensor.name.split(".")
        kv_shared = parts[0] == "blk" and int(parts[1]) >= KV_FROM_START and parts[2] in ("attn_k", "attn_v")
        if parts[0] == "blk" and choice.qtype != tensor.source_type and not kv_shared:
            sums = rng.uniform(0.0, 50.0, (1, tensor.shape[0])).astype(np.float32)
            entries[tensor.name] = ImatrixEntry(sums, np.array([int(rng.integers(16, 4096))]))
    if not entries:  # nothing to quantize (F32 scheme on an F32 file)
        return {}
    write_imatrix_gguf(path, Imatrix(entries, ["synthetic"], chunk_count=3, chunk_size=512))
    return normalize(read_imatrix(path))


def our_quantization(path: Path, scheme: str, imatrix: dict[str, np.ndarray] | None) -> dict[str, tuple[T, bytes]]:
    """Plan with our rules and quantize every tensor with quantize_rows, from the F32 GGUF."""
    tensors = gguf_tensors(path)
    choices = plan_types(tensors, scheme, PlanOptions(has_imatrix=imatrix is not None))
    quantized = [c.name for t, c in zip(tensors, choices) if c.qtype != t.source_type]
    assignment = assign_imatrix(imatrix or {}, tensors, quantized)
    check_imatrix_requirement(choices, set(assignment.values) if imatrix is not None else None)
    data = {t.name: np.asarray(t.data) for t in GGUFReader(path).tensors}
    result = {}
    for tensor, choice in zip(tensors, choices):
        if choice.qtype == tensor.source_type:
            result[tensor.name] = (choice.qtype, bytes(data[tensor.name].view(np.uint8).reshape(-1)))
            continue
        rows = data[tensor.name].astype(np.float32).reshape(-1, tensor.shape[0])
        packed = quantize_rows(rows, choice.qtype, assignment.values.get(tensor.name))
        result[tensor.name] = (choice.qtype, packed.tobytes())
    return result


def llama_quantization(path: Path, out: Path, scheme: str, imatrix: dict[str, np.ndarray] | None) -> int:
    """Run llama_model_quantize; returns its status (0 = success)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(SCHEMES[scheme].ftype)
    params.nthread = 2
    keep_alive = []
    if imatrix is not None:
        table = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
        for slot, (name, values) in zip(table, imatrix.items()):
            values = np.ascontiguousarray(values, dtype=np.float32)
            keep_alive.append(values)
            slot.name, slot.size = name.encode(), values.size
            slot.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        table[len(imatrix)].name = None
        params.imatrix = table
    return llama_cpp.llama_model_quantize(str(path).encode(), str(out).encode(), ctypes.byref(params))


def compare_with_llama_quantize(f32_gguf: Path, work_dir: Path, scheme: str, with_imatrix: bool) -> None:
    tensors = gguf_tensors(f32_gguf)
    imatrix = None
    if with_imatrix:
        imatrix = synthetic_imatrix(tensors, plan_types(tensors, scheme, PlanOptions(has_imatrix=True)),
                                    work_dir / "imatrix.gguf")
    out = work_dir / f"{scheme}.gguf"
    status = llama_quantization(f32_gguf, out, scheme, imatrix)
    try:
        ours = our_quantization(f32_gguf, scheme, imatrix)
    except QuantizationError:
        assert status != 0, "we refused a quantization llama-quantize performs"
        return
    assert status == 0, "llama-quantize refused a quantization we perform"
    theirs = gguf_tensor_bytes(out)
    assert list(theirs) == sorted(ours, key=llama_order_key), "tensor order differs"
    type_diffs = [(n, ours[n][0].name, theirs[n][0].name) for n in theirs if ours[n][0] != theirs[n][0]]
    assert not type_diffs, type_diffs[:5]
    byte_diffs = [n for n in theirs if ours[n][1] != theirs[n][1]]
    assert not byte_diffs, byte_diffs[:5]


@pytest.mark.parametrize("with_imatrix", [False, True], ids=["no-imatrix", "imatrix"])
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_plan_and_bytes_equal_llama_quantize(tiny_text_f32_gguf, tmp_path, scheme, with_imatrix):
    compare_with_llama_quantize(tiny_text_f32_gguf, tmp_path, scheme, with_imatrix)
