"""Declarative map from Hugging Face tensor names to projector (mmproj) GGUF names.

Vision (``gemma3nv``): MobileNet-V5 blocks are double-indexed (``blocks.{stage}.{block}``)
and keep their HF suffix under ``v.blk.{stage}.{block}.``, which is how llama.cpp's loader
finds them; the stem, the multi-scale fusion adapter and the embedder use gguf-py's names.
Audio (``gemma3na``): names are the ones llama.cpp's own converter writes, plus
``a.conv1d.{i}.norm`` for the sub-sampling norms that converter cannot map.

Each tensor also gets a :class:`Role`, which decides its GGUF type (the rule table
``engine/projector_rules.PROJECTOR_RULES``) and shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gguf import MODEL_TENSOR, TENSOR_NAMES

from gemma3n_gguf.engine.projector_rules import Role

TensorKind = MODEL_TENSOR

VISION_PREFIX = "model.vision_tower.timm_model."
AUDIO_PREFIX = "model.audio_tower."


@dataclass(frozen=True)
class MappedName:
    gguf: str
    role: Role
    modality: str  # "vision" or "audio"


def _name(kind: MODEL_TENSOR, suffix: str = ".weight", **ids: int) -> str:
    return TENSOR_NAMES[kind].format(**ids) + suffix


# -- vision -----------------------------------------------------------------------------

VISION_GLOBALS: dict[str, tuple[str, Role]] = {
    VISION_PREFIX + "conv_stem.conv.weight": (_name(TensorKind.V_ENC_CONV_STEM), Role.STEM_CONV),
    VISION_PREFIX + "conv_stem.conv.bias": (_name(TensorKind.V_ENC_CONV_STEM, ".bias"), Role.CHANNEL_VECTOR),
    VISION_PREFIX + "conv_stem.bn.weight": (_name(TensorKind.V_ENC_CONV_STEM_NORM), Role.VECTOR),
    VISION_PREFIX + "msfa.ffn.pw_exp.conv.weight": (_name(TensorKind.V_ENC_MSFA_EXP), Role.CONV),
    VISION_PREFIX + "msfa.ffn.pw_exp.bn.weight": (_name(TensorKind.V_ENC_MSFA_EXP_NORM), Role.VECTOR),
    VISION_PREFIX + "msfa.ffn.pw_proj.conv.weight": (_name(TensorKind.V_ENC_MSFA_PROJ), Role.CONV),
    VISION_PREFIX + "msfa.ffn.pw_proj.bn.weight": (_name(TensorKind.V_ENC_MSFA_PROJ_NORM), Role.VECTOR),
    VISION_PREFIX + "msfa.norm.weight": (_name(TensorKind.V_ENC_MSFA_NORM), Role.VECTOR),
    "model.embed_vision.embedding.weight": (_name(TensorKind.V_MM_EMBEDDING), Role.MATRIX),
    "model.embed_vision.hard_embedding_norm.weight": (_name(TensorKind.V_MM_HARD_EMB_NORM), Role.VECTOR),
    "model.embed_vision.soft_embedding_norm.weight": (_name(TensorKind.V_MM_SOFT_EMB_NORM), Role.VECTOR),
    "model.embed_vision.embedding_projection.weight": (_name(TensorKind.V_MM_INP_PROJ), Role.INPUT_PROJECTION),
}

BLOCK_TEMPLATE = "v.blk.{stage}.{block}.{suffix}"

# Suffix under ``blocks.{stage}.{block}.`` (kept as is in GGUF) -> role.
BLOCK_SUFFIXES: dict[str, Role] = {
    # edge residual
    "conv_exp.weight": Role.CONV,
    "bn1.weight": Role.VECTOR,
    "conv_pwl.weight": Role.CONV,
    "bn2.weight": Role.VECTOR,
    # universal inverted residual
    "dw_start.conv.weight": Role.DEPTHWISE,
    "dw_start.bn.weight": Role.VECTOR,
    "pw_exp.conv.weight": Role.CONV,
    "pw_exp.bn.weight": Role.VECTOR,
    "dw_mid.conv.weight": Role.DEPTHWISE,
    "dw_mid.bn.weight": Role.VECTOR,
    "pw_proj.conv.weight": Role.CONV,
    "pw_proj.bn.weight": Role.VECTOR,
    "layer_scale.gamma": Role.CHANNEL_VECTOR,
    # multi-query attention
    "norm.weight": Role.VECTOR,
    "attn.query.proj.weight": Role.CONV,
    "attn.key.proj.weight": Role.CONV,
    "attn.value.proj.weight": Role.CONV,
    "attn.output.proj.weight": Role.CONV,
    "attn.key.down_conv.weight": Role.DEPTHWISE,
    "attn.key.norm.weight": Role.VECTOR,
    "attn.value.down_conv.weight": Role.DEPTHWISE,
    "attn.value.norm.weight": Role.VECTOR,
}


@dataclass(frozen=True)
class BlockKind:
    """A MobileNet-V5 block type as llama.cpp's loader recognises it."""

    name: str
    markers: tuple[str, ...]  # any of these present -> this kind (checked in order of BLOCK_KINDS)
    required: tuple[str, ...]  # the graph uses these unconditionally


BLOCK_KINDS: tuple[BlockKind, ...] = (
    BlockKind("edge_residual", ("conv_exp.weight",), ("conv_exp.weight", "conv_pwl.weight")),
    BlockKind("inverted_residual", ("dw_start.conv.weight", "pw_exp.conv.weight"), ()),
    BlockKind("attention", ("attn.query.proj.weight",),
              ("attn.query.proj.weight", "attn.key.proj.weight", "attn.value.proj.weight",
               "attn.output.proj.weight")),
)

_BLOCK_RE = re.compile(r"^" + re.escape(VISION_PREFIX) + r"blocks\.(\d+)\.(\d+)\.(.+)$")


def block_position(hf_name: str) -> tuple[int, int, str] | None:
    """(stage, block, suffix) of a MobileNet-V5 block tensor, else None."""
    match = _BLOCK_RE.match(hf_name)
    return (int(match.group(1)), int(match.group(2)), match.group(3)) if match else None


# -- audio ------------------------------------------------------------------------------

AUDIO_GLOBALS: dict[str, tuple[str, Role]] = {
    AUDIO_PREFIX + "subsample_conv_projection.input_proj_linear.weight": (_name(TensorKind.A_ENC_OUT), Role.INPUT_PROJECTION),
    "model.embed_audio.embedding.weight": (_name(TensorKind.A_MM_EMBEDDING), Role.MATRIX),
    "model.embed_audio.hard_embedding_norm.weight": (_name(TensorKind.A_MM_HARD_EMB_NORM), Role.VECTOR),
    "model.embed_audio.soft_embedding_norm.weight": (_name(TensorKind.A_MM_SOFT_EMB_NORM), Role.VECTOR),
    "model.embed_audio.embedding_projection.weight": (_name(TensorKind.A_MM_INP_PROJ), Role.INPUT_PROJECTION),
}

# Sub-sampling convolutions, one pair per entry of ``sscp_conv_channel_size``.
AUDIO_SSCP: dict[str, tuple[MODEL_TENSOR, Role]] = {
    "subsample_conv_projection.conv_{bid}.conv.weight": (TensorKind.A_ENC_CONV1D, Role.AUDIO_CONV),
    "subsample_conv_projection.conv_{bid}.norm.weight": (TensorKind.A_ENC_CONV1D_NORM, Role.VECTOR),
}

# Suffix under ``conformer.{bid}.`` -> (GGUF kind, role).
AUDIO_LAYER: dict[str, tuple[MODEL_TENSOR, Role]] = {
    "attention.pre_attn_norm.weight": (TensorKind.A_ENC_INPUT_NORM, Role.VECTOR),
    "attention.attn.q_proj.weight": (TensorKind.A_ENC_ATTN_Q, Role.MATRIX),
    "attention.attn.k_proj.weight": (TensorKind.A_ENC_ATTN_K, Role.MATRIX),
    "attention.attn.v_proj.weight": (TensorKind.A_ENC_ATTN_V, Role.MATRIX),
    "attention.attn.per_dim_scale": (TensorKind.A_ENC_PER_DIM_SCALE, Role.VECTOR),  # a bare Parameter
    "attention.attn.relative_position_embedding.pos_proj.weight": (TensorKind.A_ENC_LINEAR_POS, Role.MATRIX),
    "attention.post.weight": (TensorKind.A_ENC_OUTPUT, Role.MATRIX),
    "attention.post_norm.weight": (TensorKind.A_ENC_OUTPUT_NORM, Role.VECTOR),
    "ffw_layer_start.pre_layer_norm.weight": (TensorKind.A_ENC_FFN_NORM, Role.VECTOR),
    "ffw_layer_start.ffw_layer_1.weight": (TensorKind.A_ENC_FFN_UP, Role.MATRIX),
    "ffw_layer_start.ffw_layer_2.weight": (TensorKind.A_ENC_FFN_DOWN, Role.MATRIX),
    "ffw_layer_start.post_layer_norm.weight": (TensorKind.A_ENC_FFN_POST_NORM, Role.VECTOR),
    "ffw_layer_end.pre_layer_norm.weight": (TensorKind.A_ENC_FFN_NORM_1, Role.VECTOR),
    "ffw_layer_end.ffw_layer_1.weight": (TensorKind.A_ENC_FFN_UP_1, Role.MATRIX),
    "ffw_layer_end.ffw_layer_2.weight": (TensorKind.A_ENC_FFN_DOWN_1, Role.MATRIX),
    "ffw_layer_end.post_layer_norm.weight": (TensorKind.A_ENC_FFN_POST_NORM_1, Role.VECTOR),
    "lconv1d.pre_layer_norm.weight": (TensorKind.A_ENC_CONV_NORM, Role.VECTOR),
    "lconv1d.linear_start.weight": (TensorKind.A_ENC_CONV_PW1, Role.MATRIX),
    "lconv1d.depthwise_conv1d.weight": (TensorKind.A_ENC_CONV_DW, Role.AUDIO_CONV),
    "lconv1d.conv_norm.weight": (TensorKind.A_ENC_NORM_CONV, Role.VECTOR),
    "lconv1d.linear_end.weight": (TensorKind.A_ENC_CONV_PW2, Role.MATRIX),
    "norm.weight": (TensorKind.A_ENC_LAYER_PRE_NORM, Role.VECTOR),
}

_AUDIO_LAYER_RE = re.compile(r"^" + re.escape(AUDIO_PREFIX) + r"conformer\.(\d+)\.(.+)$")
_AUDIO_SSCP_RE = re.compile(r"^" + re.escape(AUDIO_PREFIX) + r"subsample_conv_projection\.conv_(\d+)\.(.+)$")


def _audio_gguf(kind: MODEL_TENSOR, hf_suffix: str, bid: int) -> str:
    # names without ".weight" in HF (per_dim_scale) keep none in GGUF, as llama.cpp writes them
    return _name(kind, ".weight" if hf_suffix.endswith(".weight") else "", bid=bid)


def expected_audio_names(n_layers: int, n_sscp_convs: int) -> set[str]:
    """Every audio GGUF tensor a complete Gemma 3n audio tower has."""
    names = {gguf for gguf, _ in AUDIO_GLOBALS.values()}
    names |= {_audio_gguf(kind, s, bid) for bid in range(n_layers) for s, (kind, _) in AUDIO_LAYER.items()}
    names |= {_audio_gguf(kind, s, bid) for bid in range(n_sscp_convs) for s, (kind, _) in AUDIO_SSCP.items()}
    return names


def expected_vision_globals() -> set[str]:
    return {gguf for gguf, _ in VISION_GLOBALS.values()}


# -- the whole map ----------------------------------------------------------------------

# Checkpoint tensors that are not part of the projector, on purpose.
NOT_IN_MMPROJ = re.compile(r"^(lm_head\.weight|model\.language_model\..*)$")


def classify(hf_name: str, n_audio_layers: int, n_sscp_convs: int) -> MappedName | None:
    """The GGUF name and role of a projector tensor, or None if the name is not mapped."""
    if hf_name in VISION_GLOBALS:
        gguf, role = VISION_GLOBALS[hf_name]
        return MappedName(gguf, role, "vision")
    position = block_position(hf_name)
    if position is not None:
        stage, block, suffix = position
        role = BLOCK_SUFFIXES.get(suffix)
        return MappedName(BLOCK_TEMPLATE.format(stage=stage, block=block, suffix=suffix), role, "vision") if role else None
    if hf_name in AUDIO_GLOBALS:
        gguf, role = AUDIO_GLOBALS[hf_name]
        return MappedName(gguf, role, "audio")
    layer = _AUDIO_LAYER_RE.match(hf_name)
    if layer and int(layer.group(1)) < n_audio_layers:
        return _lookup(AUDIO_LAYER, layer.group(2), int(layer.group(1)))
    sscp = _AUDIO_SSCP_RE.match(hf_name)
    if sscp and int(sscp.group(1)) < n_sscp_convs:
        return _lookup(AUDIO_SSCP, "subsample_conv_projection.conv_{bid}." + sscp.group(2), int(sscp.group(1)))
    return None


def _lookup(table: dict[str, tuple[MODEL_TENSOR, Role]], suffix: str, bid: int) -> MappedName | None:
    if suffix not in table:
        return None
    kind, role = table[suffix]
    return MappedName(_audio_gguf(kind, suffix, bid), role, "audio")


def is_vision_tensor(hf_name: str) -> bool:
    return hf_name.startswith(("model.vision_tower.", "model.embed_vision."))


def is_audio_tensor(hf_name: str) -> bool:
    return hf_name.startswith((AUDIO_PREFIX, "model.embed_audio."))
