"""llama.cpp's own type selector, called through ctypes: the oracle for the type plan.

libllama exports ``llama_quant_compute_types`` (C++ staging API, mangled names), which
runs ``llama_tensor_get_type`` over mock tensors of a mock model built from hyper-
parameters (kquants.md §10). It resets ``has_imatrix`` to false, so imatrix-dependent
rules cannot be checked this way.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from pathlib import Path

import llama_cpp
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.engine.planner import TensorInfo
from gemma3n_gguf.engine.schemes import Scheme

from .gemma3n_layout import TextDims

GGML_TYPE_COUNT = 43  # ggml.h of the vendored llama.cpp: "no override"

_MANGLED = {
    "model_from_metadata": "_Z31llama_quant_model_from_metadataPK22llama_quant_model_desc",
    "init": "_Z16llama_quant_initPK11llama_modelPK27llama_model_quantize_params",
    "free": "_Z16llama_quant_freeP19quantize_state_impl",
    "compute_types": "_Z25llama_quant_compute_typesP19quantize_state_impl11llama_ftypePP11ggml_tensorP9ggml_typem",
}


class _ModelDesc(ctypes.Structure):
    _fields_ = [("architecture", ctypes.c_char_p)] + [
        (name, ctypes.c_uint32) for name in
        ("n_embd", "n_ff", "n_layer", "n_head", "n_head_kv", "n_expert", "n_embd_head_k", "n_embd_head_v")]


class _GGMLInitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


@functools.cache
def _libraries() -> tuple[ctypes.CDLL, ctypes.CDLL, dict]:
    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    llama, ggml = ctypes.CDLL(str(lib_dir / "libllama.so")), ctypes.CDLL(str(lib_dir / "libggml-base.so"))
    fns = {key: getattr(llama, symbol) for key, symbol in _MANGLED.items()}
    fns["model_from_metadata"].restype = ctypes.c_void_p
    fns["model_from_metadata"].argtypes = [ctypes.POINTER(_ModelDesc)]
    fns["init"].restype = ctypes.c_void_p
    fns["init"].argtypes = [ctypes.c_void_p, ctypes.POINTER(llama_cpp.llama_model_quantize_params)]
    fns["free"].argtypes = [ctypes.c_void_p]
    fns["compute_types"].argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_int), ctypes.c_size_t]
    llama.llama_model_free.argtypes = [ctypes.c_void_p]
    ggml.ggml_init.restype, ggml.ggml_init.argtypes = ctypes.c_void_p, [_GGMLInitParams]
    ggml.ggml_free.argtypes = [ctypes.c_void_p]
    ggml.ggml_tensor_overhead.restype = ctypes.c_size_t
    ggml.ggml_new_tensor_4d.restype = ctypes.c_void_p
    ggml.ggml_new_tensor_4d.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_int64] * 4
    ggml.ggml_set_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return llama, ggml, fns


def c_compute_types(tensors: Sequence[TensorInfo], dims: TextDims, scheme: Scheme, *,
                    tensor_type: Sequence[tuple[str, T]] = (), token_embedding_type: T | None = None,
                    output_tensor_type: T | None = None, pure: bool = False) -> list[T]:
    """llama.cpp's type for each tensor, evaluated in the order given."""
    llama, ggml, fns = _libraries()
    desc = _ModelDesc(b"gemma3n", dims.n_embd, dims.n_ff, dims.n_layer, dims.n_head, dims.n_head_kv,
                      0, dims.head_dim, dims.head_dim)
    params = llama_cpp.llama_model_quantize_default_params()
    params.pure = pure
    params.token_embedding_type = GGML_TYPE_COUNT if token_embedding_type is None else int(token_embedding_type)
    params.output_tensor_type = GGML_TYPE_COUNT if output_tensor_type is None else int(output_tensor_type)
    overrides = (llama_cpp.llama_model_tensor_override * (len(tensor_type) + 1))()
    for slot, (pattern, qtype) in zip(overrides, tensor_type):
        slot.pattern, slot.type = pattern.encode(), int(qtype)
    overrides[len(tensor_type)].pattern = None
    params.tt_overrides = overrides if tensor_type else None

    model = fns["model_from_metadata"](ctypes.byref(desc))
    state = fns["init"](model, ctypes.byref(params))
    ctx = ggml.ggml_init(_GGMLInitParams(len(tensors) * ggml.ggml_tensor_overhead() + 1024, None, True))
    try:
        handles = (ctypes.c_void_p * len(tensors))()
        for k, tensor in enumerate(tensors):
            ne = list(tensor.shape) + [1] * (4 - len(tensor.shape))
            handles[k] = ggml.ggml_new_tensor_4d(ctx, int(tensor.source_type), *ne)
            ggml.ggml_set_name(handles[k], tensor.name.encode())
        result = (ctypes.c_int * len(tensors))()
        fns["compute_types"](state, int(scheme.ftype), handles, result, len(tensors))
        return [T(value) for value in result]
    finally:
        ggml.ggml_free(ctx)
        fns["free"](state)
        llama.llama_model_free(model)
