"""GGUF metadata of the projector: ``general.*``, ``clip.vision.*`` and ``clip.audio.*``.

The vision keys are the ones ``tools/mtmd/clip.cpp`` reads (several are required by its
generic loader although the MobileNet-V5 graph never uses them). Stock llama.cpp skips Gemma 3n
audio (the project's patched runtime runs it), so the audio keys are written for faithfulness: the full transformers audio
config under ``clip.audio.gemma3n.*`` and the feature extractor settings under
``clip.audio.feature_extractor.*``, enough to rebuild the audio tower and its input
features from the file alone (:func:`read_audio_settings` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gguf import GGUFWriter, LlamaFileType, VisionProjectorType

from gemma3n_gguf.core.version import __version__
from gemma3n_gguf.core.errors import GGUFFileError
from gemma3n_gguf.core.gguf_read import GGUFFile
from gemma3n_gguf.convert.projector.config import ProjectorConfig
from gemma3n_gguf.convert.projector.plan import MmprojPlan

FILE_TYPES = {"f32": LlamaFileType.ALL_F32, "f16": LlamaFileType.MOSTLY_F16,
              "bf16": LlamaFileType.MOSTLY_BF16, "q8_0": LlamaFileType.MOSTLY_Q8_0}
QUANTIZATION_VERSION = 2
AUDIO_CONFIG_PREFIX = "clip.audio.gemma3n."
FEATURE_EXTRACTOR_PREFIX = "clip.audio.feature_extractor."


@dataclass(frozen=True)
class Setting:
    """One HF setting stored under a GGUF key; ``kind`` fixes its GGUF type."""

    field: str
    kind: str  # u32 | f32 | bool | u32[] | u32[][2] (list of pairs, stored flat) | f32[]? (nullable)


AUDIO_CONFIG_SETTINGS: tuple[Setting, ...] = (
    Setting("hidden_size", "u32"),
    Setting("input_feat_size", "u32"),
    Setting("rms_norm_eps", "f32"),
    Setting("gradient_clipping", "f32"),
    Setting("vocab_size", "u32"),
    Setting("vocab_offset", "u32"),
    Setting("conf_attention_chunk_size", "u32"),
    Setting("conf_attention_context_left", "u32"),
    Setting("conf_attention_context_right", "u32"),
    Setting("conf_attention_logit_cap", "f32"),
    Setting("conf_num_attention_heads", "u32"),
    Setting("conf_num_hidden_layers", "u32"),
    Setting("conf_conv_kernel_size", "u32"),
    Setting("conf_reduction_factor", "u32"),
    Setting("conf_residual_weight", "f32"),
    Setting("sscp_conv_channel_size", "u32[]"),
    Setting("sscp_conv_group_norm_eps", "f32"),
    Setting("sscp_conv_kernel_size", "u32[][2]"),
    Setting("sscp_conv_stride_size", "u32[][2]"),
)

FEATURE_EXTRACTOR_SETTINGS: tuple[Setting, ...] = (
    Setting("feature_size", "u32"),
    Setting("sampling_rate", "u32"),
    Setting("frame_length", "u32"),
    Setting("hop_length", "u32"),
    Setting("fft_length", "u32"),
    Setting("fft_overdrive", "bool"),
    Setting("min_frequency", "f32"),
    Setting("max_frequency", "f32"),
    Setting("mel_floor", "f32"),
    Setting("preemphasis", "f32"),
    Setting("preemphasis_htk_flavor", "bool"),
    Setting("input_scale_factor", "f32"),
    Setting("dither", "f32"),
    Setting("padding_value", "f32"),
    Setting("per_bin_mean", "f32[]?"),
    Setting("per_bin_stddev", "f32[]?"),
)


def add_mmproj_metadata(w: GGUFWriter, cfg: ProjectorConfig, plan: MmprojPlan, *, name: str, mmproj_type: str) -> None:
    w.add_type("mmproj")
    w.add_name(name)
    w.add_description("Gemma 3n projector: MobileNet-V5 vision (runs in llama.cpp) and USM conformer audio "
                      "(runs in the runtime `gemma3n-gguf runtime build` makes; stock llama.cpp skips it)")
    w.add_file_type(FILE_TYPES[mmproj_type])
    w.add_quantization_version(QUANTIZATION_VERSION)
    w.add_string("general.converter", f"gemma3n-gguf {__version__}")
    _add_vision(w, cfg, plan)
    if cfg.audio is not None:
        _add_audio(w, cfg, plan)


def _add_vision(w: GGUFWriter, cfg: ProjectorConfig, plan: MmprojPlan) -> None:
    v = cfg.vision
    w.add_clip_has_vision_encoder(True)
    w.add_clip_vision_projector_type(VisionProjectorType.GEMMA3NV)
    w.add_vision_embedding_length(v.hidden_size)
    w.add_vision_projection_dim(cfg.text_hidden_size)
    w.add_vision_image_size(v.image_size)
    w.add_vision_patch_size(v.patch_size)  # clip.cpp: tokens = image_size / patch_size
    w.add_vision_image_mean(list(v.image_mean))
    w.add_vision_image_std(list(v.image_std))
    w.add_vision_attention_layernorm_eps(v.rms_norm_eps)
    # required by clip.cpp's generic loader, unused by the MobileNet-V5 graph
    w.add_vision_block_count(sum(plan.blocks_per_stage))
    w.add_vision_feed_forward_length(4 * v.hidden_size)
    w.add_vision_head_count(_attention_heads(plan))


def _attention_heads(plan: MmprojPlan) -> int:
    shapes = {t.name: t.shape for t in plan.tensors}
    for name, shape in shapes.items():
        if name.endswith("attn.query.proj.weight"):
            key = shapes[name.replace("query", "key")]
            return shape[0] // key[0]
    return 1


def _add_audio(w: GGUFWriter, cfg: ProjectorConfig, plan: MmprojPlan) -> None:
    audio = cfg.audio.config
    ffn = next(t.shape[0] for t in plan.tensors if t.name == "a.blk.0.ffn_up.weight")
    w.add_clip_has_audio_encoder(True)
    w.add_clip_audio_projector_type(VisionProjectorType.GEMMA3NA)
    w.add_audio_embedding_length(int(audio["hidden_size"]))
    w.add_audio_feed_forward_length(int(ffn))
    w.add_audio_block_count(int(audio["conf_num_hidden_layers"]))
    w.add_audio_head_count(int(audio["conf_num_attention_heads"]))
    w.add_audio_projection_dim(cfg.text_hidden_size)
    w.add_audio_num_mel_bins(int(audio["input_feat_size"]))
    w.add_audio_attention_layernorm_eps(float(audio["rms_norm_eps"]))
    w.add_audio_chunk_size(int(audio["conf_attention_chunk_size"]))
    w.add_audio_conv_kernel_size(int(audio["conf_conv_kernel_size"]))
    _add_settings(w, AUDIO_CONFIG_PREFIX, AUDIO_CONFIG_SETTINGS, audio)
    _add_settings(w, FEATURE_EXTRACTOR_PREFIX, FEATURE_EXTRACTOR_SETTINGS, cfg.audio.feature_extractor)


def _add_settings(w: GGUFWriter, prefix: str, settings: tuple[Setting, ...], values: dict[str, Any]) -> None:
    for s in settings:
        value = values.get(s.field)
        key = prefix + s.field
        if s.kind == "u32":
            w.add_uint32(key, int(value))
        elif s.kind == "f32":
            w.add_float32(key, float(value))
        elif s.kind == "bool":
            w.add_bool(key, bool(value))
        elif s.kind == "u32[]":
            w.add_array(key, [int(x) for x in value])
        elif s.kind == "u32[][2]":
            w.add_array(key, [int(x) for pair in value for x in pair])
        elif s.kind == "f32[]?" and value is not None:
            w.add_array(key, [float(x) for x in value])


def read_audio_settings(gguf: GGUFFile) -> tuple[dict[str, Any], dict[str, Any]]:
    """(transformers audio config, feature extractor settings) stored in a projector GGUF."""
    return (_read_settings(gguf, AUDIO_CONFIG_PREFIX, AUDIO_CONFIG_SETTINGS),
            _read_settings(gguf, FEATURE_EXTRACTOR_PREFIX, FEATURE_EXTRACTOR_SETTINGS))


# The Python type each setting kind must read back as.
_KIND_TYPES: dict[str, tuple[type, ...]] = {"u32": (int,), "f32": (float,), "bool": (bool,), "u32[]": (list,),
                                            "u32[][2]": (list,), "f32[]?": (list,)}


def _read_settings(gguf: GGUFFile, prefix: str, settings: tuple[Setting, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in settings:
        key = prefix + s.field
        value = gguf.value(key)
        if value is None:
            if s.kind.endswith("?"):
                out[s.field] = None
                continue
            raise GGUFFileError(f"{gguf.path}: {key} is missing: this projector carries no Gemma 3n audio settings")
        if not isinstance(value, _KIND_TYPES[s.kind]) or (s.kind != "bool" and isinstance(value, bool)):
            raise GGUFFileError(f"{gguf.path}: {key} holds {value!r}, not a {s.kind} value")
        if s.kind == "u32[][2]":
            value = [list(value[i:i + 2]) for i in range(0, len(value), 2)]
        out[s.field] = value
    return out
