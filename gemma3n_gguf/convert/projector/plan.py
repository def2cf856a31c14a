"""The projector tensor plan: every GGUF tensor with its shape, source and role.

Building it reads only checkpoint headers. It proves the name map complete in both
directions (each vision/audio tensor is mapped, each tensor llama.cpp's graph uses is
present), checks the MobileNet-V5 layout against what the graph hard-codes, and raises
once with every problem listed. The roles type the tensors: the planner applies the rule
table ``engine/projector_rules.PROJECTOR_RULES`` when ``engine.inputs.ProjectorInput`` is made.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gemma3n_gguf.core.errors import ConfigError, TensorMappingError
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.convert.projector.config import ProjectorConfig, block_args
from gemma3n_gguf.convert.projector.names import (
    BLOCK_KINDS,
    BLOCK_TEMPLATE,
    NOT_IN_MMPROJ,
    VISION_PREFIX,
    BlockKind,
    Role,
    block_position,
    classify,
    expected_audio_names,
    expected_vision_globals,
    is_audio_tensor,
    is_vision_tensor,
)
from gemma3n_gguf.model.text_plan import mapping_report

LLAMA_CPP_STAGES = 4


@dataclass(frozen=True)
class MmprojTensor:
    name: str  # GGUF name
    hf_name: str
    shape: tuple[int, ...]  # numpy order, as written; GGUF stores it reversed
    role: Role
    modality: str


@dataclass
class MmprojPlan:
    tensors: list[MmprojTensor]
    blocks_per_stage: list[int]
    block_kinds: list[list[str]]
    has_audio: bool
    dropped: list[str] = field(default_factory=list)


def has_vision_weights(ckpt: Checkpoint) -> bool:
    return any(is_vision_tensor(n) for n in ckpt.tensors)


def has_audio_weights(ckpt: Checkpoint) -> bool:
    return any(is_audio_tensor(n) for n in ckpt.tensors)


def build_mmproj_plan(ckpt: Checkpoint, cfg: ProjectorConfig) -> MmprojPlan:
    n_layers, n_convs = _audio_counts(cfg)
    mapped: dict[str, tuple[str, Role, str]] = {}
    unmapped, dropped = [], []
    for hf_name in sorted(ckpt.tensors):
        if NOT_IN_MMPROJ.match(hf_name) or (cfg.audio is None and is_audio_tensor(hf_name)):
            dropped.append(hf_name)
            continue
        name = classify(hf_name, n_layers, n_convs)
        if name is None or name.gguf in mapped:  # a second source for one GGUF name is a table bug
            unmapped.append(hf_name)
        else:
            mapped[name.gguf] = (hf_name, name.role, name.modality)

    stages = _stages(ckpt)
    expected = expected_vision_globals() | _required_block_names(ckpt, stages)
    if cfg.audio is not None:
        expected |= expected_audio_names(n_layers, n_convs)
    missing = sorted(expected - set(mapped))
    if unmapped or missing:
        raise TensorMappingError(mapping_report(unmapped, missing, needs="what the Gemma 3n projector needs"))
    _check_layout(ckpt, cfg, stages)

    tensors = [MmprojTensor(gguf_name, hf_name, _gguf_shape(ckpt.ref(hf_name).shape, role), role, modality)
               for gguf_name, (hf_name, role, modality) in _ordered(mapped)]
    kinds = [[_block_kind(ckpt, s, b).name for b in range(n)] for s, n in enumerate(stages)]
    return MmprojPlan(tensors, stages, kinds, cfg.audio is not None, dropped)


def _audio_counts(cfg: ProjectorConfig) -> tuple[int, int]:
    if cfg.audio is None:
        return 0, 0
    audio = cfg.audio.config
    return int(audio.get("conf_num_hidden_layers", 0)), len(audio.get("sscp_conv_channel_size", ()))


def _gguf_shape(hf_shape: tuple[int, ...], role: Role) -> tuple[int, ...]:
    if role is Role.CHANNEL_VECTOR:
        # ggml_mul / ggml_add broadcast it over [W, H, C, B] maps: ggml {1, 1, C, 1}
        return (1, hf_shape[-1], 1, 1)
    return tuple(hf_shape)


# -- MobileNet-V5 layout ----------------------------------------------------------------


def _stages(ckpt: Checkpoint) -> list[int]:
    """Blocks per stage, after checking stages and blocks are numbered without gaps
    (llama.cpp's loader stops at the first missing index)."""
    found: dict[int, set[int]] = defaultdict(set)
    for name in ckpt.tensors:
        position = block_position(name)
        if position:
            found[position[0]].add(position[1])
    problems = []
    if sorted(found) != list(range(LLAMA_CPP_STAGES)):
        problems.append(f"MobileNet-V5 stages {sorted(found)}; llama.cpp's gemma3nv graph needs exactly "
                        f"stages 0-{LLAMA_CPP_STAGES - 1} (it fuses the ends of stages 2 and 3)")
    for stage, blocks in sorted(found.items()):
        if sorted(blocks) != list(range(len(blocks))):
            problems.append(f"stage {stage} has blocks {sorted(blocks)}: numbering has gaps")
    if problems:
        raise ConfigError("llama.cpp cannot run this vision model:\n" + "\n".join(f"  - {p}" for p in problems))
    return [len(found[s]) for s in range(LLAMA_CPP_STAGES)]


def _block_suffixes(ckpt: Checkpoint, stage: int, block: int) -> set[str]:
    prefix = f"{VISION_PREFIX}blocks.{stage}.{block}."
    return {n[len(prefix):] for n in ckpt.tensors if n.startswith(prefix)}


def _block_kind(ckpt: Checkpoint, stage: int, block: int) -> BlockKind:
    suffixes = _block_suffixes(ckpt, stage, block)
    kind = next((k for k in BLOCK_KINDS if suffixes & set(k.markers)), None)
    if kind is None:
        raise ConfigError(f"vision block {stage}.{block} has none of conv_exp, dw_start, pw_exp or "
                          "attn.query: llama.cpp would stop reading the stage there")
    return kind


def _required_block_names(ckpt: Checkpoint, stages: list[int]) -> set[str]:
    return {
        BLOCK_TEMPLATE.format(stage=s, block=b, suffix=suffix)
        for s, n in enumerate(stages)
        for b in range(n)
        for suffix in _block_kind(ckpt, s, b).required
    }


def _check_layout(ckpt: Checkpoint, cfg: ProjectorConfig, stages: list[int]) -> None:
    problems = []
    stem = ckpt.ref(VISION_PREFIX + "conv_stem.conv.weight").shape
    if tuple(stem[-2:]) != (3, 3):
        problems.append(f"stem kernel {tuple(stem[-2:])}; llama.cpp hard-codes a 3x3 stride-2 stem")
    for s, n in enumerate(stages):
        for b in range(n):
            problems += [f"vision block {s}.{b}: {p}" for p in _block_layout_problems(ckpt, s, b)]
    width = ckpt.ref(VISION_PREFIX + "msfa.ffn.pw_proj.conv.weight").shape[0]
    if width != cfg.vision.hidden_size:
        problems.append(f"the fusion adapter outputs {width} channels but vision hidden_size is "
                        f"{cfg.vision.hidden_size}; the graph asserts they are equal")
    declared = block_args(cfg.vision.model_args)
    if declared is not None and [len(stage) for stage in declared] != stages:
        problems.append(f"model_args declares {[len(st) for st in declared]} blocks per stage, "
                        f"the weights have {stages}")
    if problems:
        raise ConfigError("llama.cpp cannot run this vision model:\n" + "\n".join(f"  - {p}" for p in problems))


def _block_layout_problems(ckpt: Checkpoint, stage: int, block: int) -> list[str]:
    kind = _block_kind(ckpt, stage, block).name
    suffixes = _block_suffixes(ckpt, stage, block)
    out = []
    if kind == "edge_residual":
        shape = ckpt.ref(f"{VISION_PREFIX}blocks.{stage}.{block}.conv_exp.weight").shape
        if tuple(shape[-2:]) != (3, 3):
            out.append(f"edge-residual kernel {tuple(shape[-2:])}; llama.cpp hard-codes 3x3")
    if block == 0 and kind == "attention":
        out.append("a stage starts with an attention block; llama.cpp cannot down-sample there")
    if block == 0 and kind == "inverted_residual" and "dw_mid.conv.weight" not in suffixes:
        out.append("a stage starts without dw_mid; llama.cpp down-samples only on dw_mid")
    return out


def _ordered(mapped: dict[str, tuple[str, Role, str]]) -> list[tuple[str, tuple[str, Role, str]]]:
    """Vision before audio; blocks in numeric order (llama.cpp does not care, people do)."""

    def key(name: str):
        parts = name.split(".")
        numbers = tuple(int(p) for p in parts if p.isdigit())
        return (mapped[name][2] != "vision", parts[0], numbers, name)

    return [(name, mapped[name]) for name in sorted(mapped, key=key)]
