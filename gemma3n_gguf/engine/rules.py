"""llama-quantize's per-tensor type rules, as data (``src/llama-quant.cpp``).

Only what the schemes of :mod:`.schemes` can reach on a Gemma 3n model is kept: the
branches for IQ1/IQ2/IQ3/TQ/MXFP4 file types, mixture-of-experts models, Falcon and
LLaMA-70B never fire for them and are left out. The stateful part (the counters that
make a rule depend on how many attn_v / ffn_down tensors came before) lives in
:mod:`.plan`; this module only answers "given the counter, which type?".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as GGMLType

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.core.llama_facts import KV_SHARED_FROM


class Category(enum.Enum):
    """``tensor_category``: the broad role llama-quantize reads from a tensor's name."""

    OUTPUT = "output"
    TOKEN_EMBD = "token_embd"
    ATTN_QKV = "attn_qkv"
    ATTN_KV_B = "attn_kv_b"
    ATTN_V = "attn_v"
    ATTN_K = "attn_k"
    ATTN_Q = "attn_q"
    ATTN_OUTPUT = "attn_output"
    FFN_UP = "ffn_up"
    FFN_GATE = "ffn_gate"
    FFN_DOWN = "ffn_down"
    OTHER = "other"


TOKEN_EMBD_NAMES = ("token_embd.weight", "per_layer_token_embd.weight")
PLE_NAME = "per_layer_token_embd.weight"
OUTPUT_NAME = "output.weight"

# First match wins; a string is matched as a substring of the tensor name.
_CATEGORY_SUBSTRINGS: tuple[tuple[Category, str], ...] = (
    (Category.ATTN_QKV, "attn_qkv.weight"),
    (Category.ATTN_KV_B, "attn_kv_b.weight"),
    (Category.ATTN_V, "attn_v.weight"),
    (Category.ATTN_K, "attn_k.weight"),
    (Category.ATTN_Q, "attn_q.weight"),
    (Category.ATTN_OUTPUT, "attn_output.weight"),
    (Category.FFN_UP, "ffn_up"),
    (Category.FFN_GATE, "ffn_gate"),
    (Category.FFN_DOWN, "ffn_down"),
)

ATTN_V_LIKE = frozenset({Category.ATTN_V, Category.ATTN_QKV, Category.ATTN_KV_B})


def category_of(name: str) -> Category:
    if name == OUTPUT_NAME:
        return Category.OUTPUT
    if name in TOKEN_EMBD_NAMES:
        return Category.TOKEN_EMBD
    for category, substring in _CATEGORY_SUBSTRINGS:
        if substring in name:
            return category
    return Category.OTHER


# -- which tensors may be quantized (tensor_allows_quantization) ---------------------------

# Substrings that keep a tensor in its source type. The Gemma 3n ones are altup, laurel and
# per_layer_model_proj; the rest cannot occur in a gemma3n file but cost nothing to honour.
NEVER_QUANTIZED_SUBSTRINGS: tuple[str, ...] = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
    "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
    "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
    "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
)
# LLM_TN(arch)(POS_EMBD / TOKEN_TYPES, "weight")
NEVER_QUANTIZED_NAMES = frozenset({"position_embd.weight", "token_types.weight"})


def ggml_n_dims(shape: tuple[int, ...]) -> int:
    """``ggml_n_dims``: trailing dimensions of size 1 do not count; at least 1."""
    for index in range(len(shape) - 1, 0, -1):
        if shape[index] > 1:
            return index + 1
    return 1


def why_not_quantized(name: str, shape: tuple[int, ...], leave_output: bool = False) -> str | None:
    """None if llama-quantize may quantize this tensor, else the reason it keeps its type."""
    if ggml_n_dims(shape) < 2:
        return "1-D tensor"
    if not name.endswith("weight"):
        return "name does not end in 'weight'"
    if leave_output and name == OUTPUT_NAME:
        return "output tensor left as is"
    if name in NEVER_QUANTIZED_NAMES:
        return f"{name} is never quantized"
    for substring in NEVER_QUANTIZED_SUBSTRINGS:
        if substring in name:
            return f"name contains {substring!r}"
    return None


# -- mixing rules (llama_tensor_get_type_impl) ---------------------------------------------

@dataclass(frozen=True)
class LayerContext:
    """What a rule may look at: the counter, its total, GQA and whether an imatrix is used."""

    i: int
    n: int
    gqa: int | None
    has_imatrix: bool

    def gqa_at_least_4(self) -> bool:
        if self.gqa is None:
            raise QuantizationError(
                "cannot tell the GQA ratio: blk.0.attn_q and blk.0.attn_k/attn_v are needed")
        return self.gqa >= 4


def use_more_bits(i: int, n: int) -> bool:
    # (i - n//8) is never negative when evaluated, so Python's % equals C's here.
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@dataclass(frozen=True)
class Rule:
    """``qtype`` when ``applies`` (default: always); ``text`` says which condition held."""

    qtype: GGMLType
    text: str
    applies: Callable[[LayerContext], bool] = lambda ctx: True


def _more_bits(ctx: LayerContext) -> bool:
    return use_more_bits(ctx.i, ctx.n)


def _first_eighth(ctx: LayerContext) -> bool:
    return ctx.i < ctx.n // 8


_GQA4 = Rule(GGMLType.Q4_K, "gqa >= 4", LayerContext.gqa_at_least_4)
_MORE_BITS_Q6 = Rule(GGMLType.Q6_K, "use_more_bits(i, n)", _more_bits)
_IQ4_ATTN_V = Rule(GGMLType.Q5_K, "gqa >= 4", LayerContext.gqa_at_least_4)
_IQ4_FFN_DOWN = Rule(GGMLType.Q5_K, "i < n/8 without imatrix", lambda c: _first_eighth(c) and not c.has_imatrix)

# Category -> scheme -> rules tried in order; no match keeps the scheme's default type.
RULES: Mapping[Category, Mapping[str, tuple[Rule, ...]]] = MappingProxyType({
    Category.ATTN_V: MappingProxyType({  # also ATTN_QKV and ATTN_KV_B (attn_v-like)
        "Q2_K": (_GQA4, Rule(GGMLType.Q3_K, "gqa < 4")),
        "Q2_K_S": (_GQA4,),
        "Q3_K_M": (Rule(GGMLType.Q5_K, "i < 2", lambda c: c.i < 2), Rule(GGMLType.Q4_K, "i >= 2")),
        "Q3_K_L": (Rule(GGMLType.Q5_K, "always"),),
        "IQ4_NL": (_IQ4_ATTN_V,),
        "IQ4_XS": (_IQ4_ATTN_V,),
        "Q4_K_M": (_MORE_BITS_Q6,),
        "Q5_K_M": (_MORE_BITS_Q6,),
        "Q4_K_S": (Rule(GGMLType.Q5_K, "i < 4", lambda c: c.i < 4),),
    }),
    Category.FFN_DOWN: MappingProxyType({
        "Q2_K": (Rule(GGMLType.Q3_K, "always"),),
        "Q2_K_S": (Rule(GGMLType.Q4_K, "i < n/8", _first_eighth),),
        "Q3_K_M": (Rule(GGMLType.Q5_K, "i < n/16", lambda c: c.i < c.n // 16), Rule(GGMLType.Q4_K, "i >= n/16")),
        "Q3_K_L": (Rule(GGMLType.Q5_K, "always"),),
        "Q4_K_M": (_MORE_BITS_Q6,),
        "IQ4_NL": (_IQ4_FFN_DOWN,),
        "IQ4_XS": (_IQ4_FFN_DOWN,),
        "Q5_K_M": (_MORE_BITS_Q6,),
        "Q4_K_S": (Rule(GGMLType.Q5_K, "i < n/8", _first_eighth),),
        "Q4_0": (Rule(GGMLType.Q4_1, "i < n/8 with imatrix", lambda c: _first_eighth(c) and c.has_imatrix),),
        "Q5_0": (Rule(GGMLType.Q5_1, "i < n/8 with imatrix", lambda c: _first_eighth(c) and c.has_imatrix),),
    }),
    Category.ATTN_OUTPUT: MappingProxyType({
        "Q2_K": (Rule(GGMLType.Q3_K, "always"),),
        "Q3_K_M": (Rule(GGMLType.Q4_K, "always"),),
        "Q3_K_L": (Rule(GGMLType.Q5_K, "always"),),
    }),
})


def rule_table_for(category: Category) -> Mapping[str, tuple[Rule, ...]]:
    key = Category.ATTN_V if category in ATTN_V_LIKE else category
    return RULES.get(key, MappingProxyType({}))


def apply_rules(category: Category, scheme_name: str, ctx: LayerContext) -> Rule | None:
    for rule in rule_table_for(category).get(scheme_name, ()):
        if rule.applies(ctx):
            return rule
    return None


def tied_embedding_type(default_type: GGMLType, ne0: int) -> tuple[GGMLType, str]:
    """Rule A for output.weight, and token_embd/per_layer_token_embd when embeddings are tied."""
    if ne0 % GGML_QUANT_SIZES[default_type][0]:
        return GGMLType.Q8_0, f"tied/output embedding: ne0 {ne0} not divisible by {default_type.name}'s block -> Q8_0"
    if default_type != GGMLType.Q8_0:
        return GGMLType.Q6_K, "tied/output embedding -> Q6_K"
    return GGMLType.Q8_0, "tied/output embedding, Q8_0 scheme -> Q8_0"


# -- shape fallback (tensor_type_fallback) -------------------------------------------------

_FALLBACK: Mapping[GGMLType, GGMLType] = MappingProxyType({
    GGMLType.IQ1_S: GGMLType.IQ4_NL, GGMLType.IQ1_M: GGMLType.IQ4_NL, GGMLType.IQ2_XXS: GGMLType.IQ4_NL, GGMLType.IQ2_XS: GGMLType.IQ4_NL,
    GGMLType.IQ2_S: GGMLType.IQ4_NL, GGMLType.IQ3_XXS: GGMLType.IQ4_NL, GGMLType.IQ3_S: GGMLType.IQ4_NL, GGMLType.IQ4_XS: GGMLType.IQ4_NL,
    GGMLType.Q2_K: GGMLType.Q4_0, GGMLType.Q3_K: GGMLType.Q4_0, GGMLType.TQ1_0: GGMLType.Q4_0, GGMLType.TQ2_0: GGMLType.Q4_0,
    GGMLType.Q4_K: GGMLType.Q5_0, GGMLType.Q5_K: GGMLType.Q5_1, GGMLType.Q6_K: GGMLType.Q8_0,
})


def block_size(qtype: GGMLType) -> int:
    return GGML_QUANT_SIZES[qtype][0]


def shape_fallback(qtype: GGMLType, ne0: int) -> GGMLType:
    """The type llama-quantize uses when rows of ``ne0`` values do not fit ``qtype``'s blocks."""
    if ne0 % block_size(qtype) == 0:
        return qtype
    if qtype in _FALLBACK:
        fallback = _FALLBACK[qtype]
    elif block_size(qtype) <= 32:
        fallback = qtype
    else:
        raise QuantizationError(f"no fallback type for {qtype.name} with rows of {ne0} values")
    return fallback if ne0 % block_size(fallback) == 0 else GGMLType.F16


def requires_imatrix(name: str, qtype: GGMLType, scheme_name: str) -> bool:
    """``tensor_requires_imatrix``: the very low-bit types, and Q2_K inside a Q2_K_S file."""
    if name in TOKEN_EMBD_NAMES or name == OUTPUT_NAME:
        return False
    if qtype in (GGMLType.IQ3_XXS, GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S, GGMLType.IQ1_M, GGMLType.IQ1_S):
        return True
    return qtype == GGMLType.Q2_K and scheme_name == "Q2_K_S"


def is_kv_shared_kv(name: str) -> bool:
    """attn_k/attn_v of a KV-shared layer: llama.cpp never computes them, so no imatrix has them."""
    match = re.match(r"blk\.(\d+)\.attn_[kv]\.weight$", name)
    return bool(match) and int(match.group(1)) >= KV_SHARED_FROM
