"""Gemma 3n text-model tensor lists (names, ggml shapes, source types), no weights.

Built from gemma3n-gguf-format.md §1.2/§2.3: the tensors a text GGUF of architecture
gemma3n holds, in ggml order (ne0 first). The list is written in converter order
(globals first, then each layer), not llama.cpp's sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGMLQuantizationType as T

from gemma3n_gguf.engine.planner import TensorInfo


@dataclass(frozen=True)
class TextDims:
    n_layer: int
    n_ff: int
    n_embd: int = 2048
    n_head: int = 8
    n_head_kv: int = 2
    head_dim: int = 256
    n_vocab: int = 262400
    ple_dim: int = 256
    laurel_rank: int = 64
    n_altup: int = 4


E2B = TextDims(n_layer=30, n_ff=8192)
E4B = TextDims(n_layer=35, n_ff=16384)
# parity-and-fixtures.md §3: the tiny-text fixture shape (ne0 = 64 forces shape fallbacks).
TINY = TextDims(n_layer=22, n_ff=2048, n_embd=64, n_head=2, n_head_kv=1, head_dim=32, n_vocab=1000)

# Forced to F32 by the converter besides norms and 1-D tensors.
_F32_MATRICES = ("altup_correct_coef", "altup_predict_coef")


def _info(name: str, shape: tuple[int, ...], matrix_type: T) -> TensorInfo:
    is_f32 = len(shape) == 1 or name.endswith("_norm.weight") or any(s in name for s in _F32_MATRICES)
    return TensorInfo(name, shape, T.F32 if is_f32 else matrix_type)


def global_shapes(d: TextDims) -> dict[str, tuple[int, ...]]:
    ple_width = d.ple_dim * d.n_layer
    return {
        "token_embd.weight": (d.n_embd, d.n_vocab),
        "per_layer_token_embd.weight": (ple_width, d.n_vocab),
        "per_layer_model_proj.weight": (d.n_embd, ple_width),
        "per_layer_proj_norm.weight": (d.ple_dim,),
        "altup_proj.weight": (d.n_embd, d.n_embd, d.n_altup - 1),
        "altup_unembd_proj.weight": (d.n_embd, d.n_embd, d.n_altup - 1),
        "output_norm.weight": (d.n_embd,),
    }


def layer_shapes(d: TextDims) -> dict[str, tuple[int, ...]]:
    e, q_width, kv_width = d.n_embd, d.n_head * d.head_dim, d.n_head_kv * d.head_dim
    return {
        "attn_norm": (e,), "attn_q": (e, q_width), "attn_k": (e, kv_width), "attn_v": (e, kv_width),
        "attn_output": (q_width, e), "attn_q_norm": (d.head_dim,), "attn_k_norm": (d.head_dim,),
        "post_attention_norm": (e,), "ffn_norm": (e,), "ffn_gate": (e, d.n_ff), "ffn_up": (e, d.n_ff),
        "ffn_down": (d.n_ff, e), "post_ffw_norm": (e,), "inp_gate": (e, d.ple_dim),
        "proj": (d.ple_dim, e), "post_norm": (e,),
        "altup_correct_coef": (d.n_altup, d.n_altup), "altup_correct_scale": (e,),
        "altup_predict_coef": (d.n_altup, d.n_altup * d.n_altup), "altup_router": (e, d.n_altup),
        "altup_router_norm": (e,), "laurel_l": (e, d.laurel_rank), "laurel_r": (d.laurel_rank, e),
        "laurel_post_norm": (e,),
    }


def text_tensors(d: TextDims, matrix_type: T = T.BF16, with_output: bool = False) -> list[TensorInfo]:
    tensors = [_info(name, shape, matrix_type) for name, shape in global_shapes(d).items()]
    if with_output:
        tensors.append(_info("output.weight", (d.n_embd, d.n_vocab), matrix_type))
    for il in range(d.n_layer):
        tensors += [_info(f"blk.{il}.{kind}.weight", shape, matrix_type)
                    for kind, shape in layer_shapes(d).items()]
    return tensors
