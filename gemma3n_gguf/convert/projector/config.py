"""What the projector needs from a checkpoint's configs, and what llama.cpp cannot run.

Read from ``config.json`` (vision and audio sub-configs), ``preprocessor_config.json``
(image size, audio feature extractor) and ``processor_config.json`` (tokens per image).
llama.cpp's MobileNet-V5 graph (``tools/mtmd/models/mobilenetv5.cpp``) hard-codes much of
the layout; :func:`vision_violations` lists every departure the configs reveal (the tensor
layout itself is checked by ``mmproj_plan``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma3n_gguf.core.errors import CheckpointError, ConfigError
from gemma3n_gguf.core.checkpoint import read_json_object
from gemma3n_gguf.convert.projector.block_strings import decode_stages

PREPROCESSOR_FILE = "preprocessor_config.json"
PROCESSOR_FILE = "processor_config.json"

TIMM_ARCHITECTURE = "mobilenetv5_300m_enc"
LLAMA_CPP_VISION_WIDTH = 2048  # clip.cpp: mtmd compares it with the text model's n_embd
LLAMA_CPP_IMAGE_TOKENS = 256  # mobilenetv5.cpp pools the fused map to a fixed 16 x 16
LLAMA_CPP_MAP_STRIDE = 16  # the fused map sits at the end of stage 2: stem and 3 stages of stride 2
LLAMA_CPP_VISION_EPS = 1e-6  # every RMSNorm of the graph and the embedder
LLAMA_CPP_KV_STRIDES = (1, 2)  # MQA K/V down-sampling: none, or stride 2 when down_conv exists

# model_args keys known not to change what llama.cpp computes; any other key is refused.
SAFE_MODEL_ARGS = frozenset({"block_args", "stem_size", "channel_multiplier", "layer_scale_init_value",
                             "drop_rate", "drop_path_rate"})


@dataclass(frozen=True)
class VisionConfig:
    architecture: str
    hidden_size: int
    rms_norm_eps: float
    vocab_offset: int
    vocab_size: int
    model_args: dict | None
    image_size: int
    image_width: int
    image_seq_length: int
    image_mean: tuple[float, ...]  # after rescaling to [0, 1]; (0, 0, 0) when not normalising
    image_std: tuple[float, ...]
    rescales_to_unit: bool

    @property
    def patch_size(self) -> int:
        """What clip.cpp divides image_size by to count tokens (not a real patch)."""
        return self.image_size // self.image_seq_length


@dataclass(frozen=True)
class AudioConfig:
    config: dict[str, Any]  # the HF audio_config, keys as transformers names them
    feature_extractor: dict[str, Any]  # Gemma3nAudioFeatureExtractor settings
    defaulted: tuple[str, ...] = ()  # settings preprocessor_config.json lacks, filled as transformers does

    def defaults_warning(self) -> str | None:
        if not self.defaulted:
            return None
        values = ", ".join(f"{name}={self.feature_extractor[name]!r}" for name in self.defaulted)
        return (f"{PREPROCESSOR_FILE} lacks audio feature extractor settings; using transformers' "
                f"Gemma3nAudioFeatureExtractor defaults, as transformers does: {values}")


@dataclass(frozen=True)
class ProjectorConfig:
    text_hidden_size: int
    vision: VisionConfig
    audio: AudioConfig | None


read_json = read_json_object  # kept as the name this module's callers use


def read_projector_config(directory: Path, config: dict, *, with_audio: bool) -> ProjectorConfig:
    """The configs of a multimodal checkpoint; ``with_audio`` when it has audio weights."""
    vision = config.get("vision_config")
    text = config.get("text_config")
    if config.get("model_type") != "gemma3n" or not isinstance(vision, dict) or not isinstance(text, dict):
        raise ConfigError(
            "config.json describes no vision model (model_type "
            f"{config.get('model_type')!r}); a projector needs a multimodal Gemma 3n checkpoint"
        )
    preprocessor_path = directory / PREPROCESSOR_FILE
    if not preprocessor_path.is_file():
        raise CheckpointError(
            f"{preprocessor_path} is missing: the projector's image size and audio feature settings "
            "come from it; copy it from the original model repository"
        )
    preprocessor = read_json(preprocessor_path)
    processor_path = directory / PROCESSOR_FILE
    processor = read_json(processor_path) if processor_path.is_file() else {}
    audio = None
    if with_audio:
        settings, defaulted = feature_extractor_settings(preprocessor)
        audio = AudioConfig(_need_dict(config, "audio_config"), settings, defaulted)
    return ProjectorConfig(int(text["hidden_size"]), _vision(vision, preprocessor, processor, config), audio)


def _vision(vision: dict, preprocessor: dict, processor: dict, config: dict) -> VisionConfig:
    size = preprocessor.get("size")
    if not isinstance(size, dict) or "height" not in size:
        raise ConfigError(f"{PREPROCESSOR_FILE} has no size.height: the image size is unknown")
    seq = processor.get("image_seq_length", preprocessor.get("image_seq_length",
                        config.get("vision_soft_tokens_per_image")))
    if seq is None:
        raise ConfigError(f"neither {PROCESSOR_FILE} nor config.json gives the number of tokens per image")
    model_args = vision.get("model_args")
    normalize = bool(preprocessor.get("do_normalize", False))
    rescale = float(preprocessor.get("rescale_factor", 1 / 255)) if preprocessor.get("do_rescale", True) else 1.0
    return VisionConfig(
        architecture=str(vision.get("architecture")),
        hidden_size=int(vision.get("hidden_size", 0)),
        rms_norm_eps=float(vision.get("rms_norm_eps", LLAMA_CPP_VISION_EPS)),
        vocab_offset=int(vision.get("vocab_offset", 0)),
        vocab_size=int(vision.get("vocab_size", 0)),
        model_args=model_args if isinstance(model_args, dict) else None,
        image_size=int(size["height"]),
        image_width=int(size.get("width", size["height"])),
        image_seq_length=int(seq),
        image_mean=tuple(preprocessor.get("image_mean", (0.0,) * 3)) if normalize else (0.0, 0.0, 0.0),
        image_std=tuple(preprocessor.get("image_std", (1.0,) * 3)) if normalize else (1.0, 1.0, 1.0),
        rescales_to_unit=abs(rescale * 255 - 1) < 1e-6,
    )


def _need_dict(config: dict, key: str) -> dict:
    value = config.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"config.json lacks {key} although the checkpoint has its weights")
    return value


# Gemma3nAudioFeatureExtractor settings a faithful projector records (preprocessor_config.json
# names); per_bin_mean / per_bin_stddev may be null.
FEATURE_EXTRACTOR_FIELDS = (
    "feature_size", "sampling_rate", "frame_length", "hop_length", "fft_length", "fft_overdrive",
    "min_frequency", "max_frequency", "mel_floor", "preemphasis", "preemphasis_htk_flavor",
    "input_scale_factor", "dither", "padding_value",
)
NULLABLE_FEATURE_FIELDS = ("per_bin_mean", "per_bin_stddev")


# Gemma3nAudioFeatureExtractor.__init__'s defaults (transformers 5.24.0), which transformers fills in
# for keys a preprocessor_config.json lacks; tests compare them with transformers' own extractor.
EXTRACTOR_DEFAULTS: dict[str, Any] = {
    "feature_size": 128, "sampling_rate": 16_000, "padding_value": 0.0, "frame_length_ms": 32.0,
    "hop_length_ms": 10.0, "min_frequency": 125.0, "max_frequency": 7600.0, "preemphasis": 0.97,
    "preemphasis_htk_flavor": True, "fft_overdrive": True, "dither": 0.0, "input_scale_factor": 1.0,
    "mel_floor": 1e-5, "per_bin_mean": None, "per_bin_stddev": None,
}


def extractor_as_transformers_builds_it(preprocessor: dict) -> dict[str, Any]:
    """The settings transformers' extractor ends up with: file values over defaults, lengths derived."""
    values = {key: preprocessor.get(key, default) for key, default in EXTRACTOR_DEFAULTS.items()}
    values["frame_length"] = int(round(values["sampling_rate"] * values["frame_length_ms"] / 1000.0))
    values["hop_length"] = int(round(values["sampling_rate"] * values["hop_length_ms"] / 1000.0))
    values["fft_length"] = 2 ** math.ceil(math.log2(values["frame_length"])) * (2 if values["fft_overdrive"] else 1)
    return values


def feature_extractor_settings(preprocessor: dict) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The extractor's settings, and the names of those the file lacks (filled as transformers does)."""
    fields = FEATURE_EXTRACTOR_FIELDS + NULLABLE_FEATURE_FIELDS
    missing = tuple(f for f in FEATURE_EXTRACTOR_FIELDS if f not in preprocessor)
    try:
        built = extractor_as_transformers_builds_it(preprocessor) if missing else {}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{PREPROCESSOR_FILE} has audio settings of the wrong type ({exc})") from exc
    return {f: preprocessor[f] if f in preprocessor else built.get(f) for f in fields}, missing


# -- what llama.cpp cannot run ----------------------------------------------------------


def vision_violations(cfg: ProjectorConfig) -> list[str]:
    """Every way the configs depart from what llama.cpp's gemma3nv graph hard-codes."""
    v = cfg.vision
    out = []
    if v.architecture != TIMM_ARCHITECTURE:
        out.append(f"vision architecture is {v.architecture!r}; llama.cpp runs only {TIMM_ARCHITECTURE}")
    if v.hidden_size != LLAMA_CPP_VISION_WIDTH:
        out.append(f"vision hidden_size (MSFA output width) is {v.hidden_size}; llama.cpp's gemma3nv "
                   f"projector needs {LLAMA_CPP_VISION_WIDTH}")
    if cfg.text_hidden_size != v.hidden_size:
        out.append(f"text hidden_size {cfg.text_hidden_size} differs from the vision width {v.hidden_size}: "
                   "mtmd refuses the pair ('mismatch between text model and mmproj n_embd')")
    if abs(v.rms_norm_eps - LLAMA_CPP_VISION_EPS) > 1e-12:
        out.append(f"vision rms_norm_eps is {v.rms_norm_eps}; llama.cpp uses 1e-6")
    out += _image_violations(v)
    out += _model_args_violations(v.model_args)
    return out


def _image_violations(v: VisionConfig) -> list[str]:
    out = []
    if not v.rescales_to_unit:
        out.append("the image processor does not rescale pixels by 1/255; llama.cpp always does")
    if v.image_width != v.image_size:
        out.append(f"image size {v.image_width}x{v.image_size} is not square; llama.cpp resizes to a square")
    if v.image_seq_length != LLAMA_CPP_IMAGE_TOKENS:
        out.append(f"image_seq_length is {v.image_seq_length}; llama.cpp's graph always yields 256 tokens (16x16)")
    elif v.image_size % (LLAMA_CPP_MAP_STRIDE * 16):
        out.append(f"image size {v.image_size} is not a multiple of 256: the fused feature map "
                   f"({v.image_size / LLAMA_CPP_MAP_STRIDE:g} wide) cannot be pooled to 16x16")
    return out


def _model_args_violations(model_args: dict | None) -> list[str]:
    if model_args is None:
        return []  # timm's own mobilenetv5_300m_enc layout, which llama.cpp was written for
    out = [f"vision model_args.{k} is not a setting llama.cpp is known to honour"
           for k in sorted(set(model_args) - SAFE_MODEL_ARGS)]
    for stage_index, stage in enumerate(block_args(model_args) or []):
        for block_index, block in enumerate(stage):
            where = f"vision block {stage_index}.{block_index}"
            out += [f"{where}: {problem}" for problem in _block_problems(block, first=block_index == 0)]
    return out


def block_args(model_args: dict | None) -> list[list[dict]] | None:
    """timm block arguments, decoded if given as timm block strings."""
    if not model_args or "block_args" not in model_args:
        return None
    stages = model_args["block_args"]
    if stages and stages[0] and isinstance(stages[0][0], str):
        stages = decode_stages(stages)
    return [list(stage) for stage in stages]


def _block_problems(block: dict, *, first: bool) -> list[str]:
    kind = block.get("block_type")
    stride = int(block.get("stride", 1))
    out = []
    if stride != (2 if first else 1):
        out.append(f"stride {stride}; llama.cpp strides 2 on the first block of a stage and 1 elsewhere")
    if block.get("noskip"):
        out.append("noskip is set; llama.cpp adds the residual whenever shapes allow")
    if block.get("act_layer") not in (None, "gelu"):
        out.append(f"activation {block.get('act_layer')}; llama.cpp uses GELU everywhere")
    if block.get("se_ratio"):
        out.append("squeeze-excite; llama.cpp's graph has none")
    if kind == "er" and int(block.get("exp_kernel_size", 3)) != 3:
        out.append("edge-residual kernel is not 3x3; llama.cpp hard-codes 3x3 padding")
    if kind == "uir" and stride == 2 and not block.get("dw_kernel_size_mid"):
        out.append("a down-sampling block without dw_mid; llama.cpp strides only on dw_mid")
    if kind == "uir" and block.get("dw_kernel_size_end"):
        out.append("dw_end convolution; llama.cpp's graph has none")
    if kind == "mqa" and int(block.get("kv_stride", 1)) not in LLAMA_CPP_KV_STRIDES:
        out.append(f"kv_stride {block.get('kv_stride')}; llama.cpp down-samples K/V by exactly 2")
    if kind not in ("er", "uir", "mqa"):
        out.append(f"block type {kind!r}; llama.cpp knows er, uir and mqa")
    return out


def check_vision(cfg: ProjectorConfig) -> None:
    problems = vision_violations(cfg)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"llama.cpp cannot run this vision model:\n{listing}")
