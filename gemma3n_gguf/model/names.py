"""Declarative map from Hugging Face tensor names to GGUF tensor names (text model).

GGUF names come from gguf-py's ``TENSOR_NAMES``; the HF side is the suffix under
``model.language_model.``. Grouped tensors (AltUp stacks) and tensors the converter
synthesises are listed apart, so the plan can prove the map complete both ways.
"""

from __future__ import annotations

import re

from gguf import MODEL_ARCH, MODEL_TENSOR, MODEL_TENSORS, TENSOR_NAMES

TensorKind = MODEL_TENSOR  # a tensor's role in llama.cpp's model (gguf's MODEL_TENSOR)
TEXT_PREFIX = "model.language_model."

# HF suffix -> GGUF tensor kind, for one-to-one tensors outside the layers.
GLOBAL_TENSORS: dict[str, MODEL_TENSOR] = {
    "embed_tokens.weight": TensorKind.TOKEN_EMBD,
    "embed_tokens_per_layer.weight": TensorKind.PER_LAYER_TOKEN_EMBD,
    "per_layer_model_projection.weight": TensorKind.PER_LAYER_MODEL_PROJ,
    "per_layer_projection_norm.weight": TensorKind.PER_LAYER_PROJ_NORM,
    "norm.weight": TensorKind.OUTPUT_NORM,
}

# HF suffix under ``layers.{bid}.`` -> GGUF tensor kind.
LAYER_TENSORS: dict[str, MODEL_TENSOR] = {
    "self_attn.q_proj.weight": TensorKind.ATTN_Q,
    "self_attn.k_proj.weight": TensorKind.ATTN_K,
    "self_attn.v_proj.weight": TensorKind.ATTN_V,
    "self_attn.o_proj.weight": TensorKind.ATTN_OUT,
    "self_attn.q_norm.weight": TensorKind.ATTN_Q_NORM,
    "self_attn.k_norm.weight": TensorKind.ATTN_K_NORM,
    "mlp.gate_proj.weight": TensorKind.FFN_GATE,
    "mlp.up_proj.weight": TensorKind.FFN_UP,
    "mlp.down_proj.weight": TensorKind.FFN_DOWN,
    "input_layernorm.weight": TensorKind.ATTN_NORM,
    "post_attention_layernorm.weight": TensorKind.ATTN_POST_NORM,
    "pre_feedforward_layernorm.weight": TensorKind.FFN_PRE_NORM,
    "post_feedforward_layernorm.weight": TensorKind.FFN_POST_NORM,
    "altup.correct_output_scale": TensorKind.ALTUP_CORRECT_SCALE,  # a bare Parameter: no ".weight"
    "altup.correction_coefs.weight": TensorKind.ALTUP_CORRECT_COEF,
    "altup.prediction_coefs.weight": TensorKind.ALTUP_PREDICT_COEF,
    "altup.modality_router.weight": TensorKind.ALTUP_ROUTER,
    "altup.router_norm.weight": TensorKind.ALTUP_ROUTER_NORM,
    "laurel.linear_left.weight": TensorKind.LAUREL_L,
    "laurel.linear_right.weight": TensorKind.LAUREL_R,
    "laurel.post_laurel_norm.weight": TensorKind.LAUREL_POST_NORM,
    "per_layer_input_gate.weight": TensorKind.PER_LAYER_INP_GATE,
    "per_layer_projection.weight": TensorKind.PER_LAYER_PROJ,
    "post_per_layer_input_norm.weight": TensorKind.PER_LAYER_POST_NORM,
}

# Several HF tensors stacked along a new leading axis into one GGUF tensor.
STACKED_TENSORS: dict[str, MODEL_TENSOR] = {
    "altup_projections.{i}.weight": TensorKind.ALTUP_PROJ,
    "altup_unembed_projections.{i}.weight": TensorKind.ALTUP_UNEMBD_PROJ,
}

# Present in GGUF but absent from transformers-5 checkpoints for KV-shared layers: they
# are never read by llama.cpp's graph, yet its loader requires them.
SYNTHESISED_IF_ABSENT = (TensorKind.ATTN_K, TensorKind.ATTN_V, TensorKind.ATTN_K_NORM)

# Written by llama.cpp only when the LM head is untied (the hard-token option of the
# projector work); otherwise token_embd doubles as the output matrix.
OPTIONAL_TENSORS = (TensorKind.OUTPUT,)

# Checkpoint tensors that are not part of the text GGUF, on purpose.
NOT_IN_TEXT_GGUF = re.compile(
    r"^(lm_head\.weight|model\.(vision_tower|audio_tower|embed_vision|embed_audio)\..*)$"
)

_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)$")
_STACK_RE = {re.compile("^" + re.escape(k).replace(r"\{i\}", r"(\d+)") + "$"): v for k, v in STACKED_TENSORS.items()}


def gguf_name(kind: MODEL_TENSOR, bid: int | None = None) -> str:
    suffix = ".weight"
    template = TENSOR_NAMES[kind]
    return (template.format(bid=bid) if bid is not None else template) + suffix


def classify(hf_name: str) -> tuple[MODEL_TENSOR, int | None, int | None] | None:
    """(kind, layer, stack index) for a text tensor name, or None if it is not mapped."""
    if not hf_name.startswith(TEXT_PREFIX):
        return None
    suffix = hf_name[len(TEXT_PREFIX):]
    if suffix in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[suffix], None, None
    match = _LAYER_RE.match(suffix)
    if match and match.group(2) in LAYER_TENSORS:
        return LAYER_TENSORS[match.group(2)], int(match.group(1)), None
    for pattern, kind in _STACK_RE.items():
        stacked = pattern.match(suffix)
        if stacked:
            return kind, None, int(stacked.group(1))
    return None


def expected_gguf_names(num_layers: int) -> set[str]:
    """Every tensor llama.cpp's gemma3n loader requires (the optional output excluded)."""
    names = set()
    for kind in MODEL_TENSORS[MODEL_ARCH.GEMMA3N]:
        if kind in OPTIONAL_TENSORS:
            continue
        if "{bid}" in TENSOR_NAMES[kind]:
            names.update(gguf_name(kind, b) for b in range(num_layers))
        else:
            names.add(gguf_name(kind))
    return names
