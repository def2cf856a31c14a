"""The projector's type rules, as data: what ``convert --mmproj-type`` writes for each tensor.

A projector tensor is typed by its :class:`Role` (what it is to llama.cpp's ``gemma3nv``
graph), not by llama-quantize's rules: some roles are fixed by llama.cpp's own converter, others
are limited to the kernels ggml's CPU backend can run. The planner (:mod:`.planner`) applies this
table for the schemes of :data:`.schemes.PROJECTOR_SCHEMES`; the input
(:class:`.inputs.ProjectorInput`) warns about every request it could not honour and widens an F16
tensor whose values F16 cannot hold.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as GGMLType

F16_MAX = 65504.0


class Role(enum.Enum):
    """What a tensor is to llama.cpp's graph, which fixes the types it can run."""

    STEM_CONV = "stem conv kernel"
    CONV = "conv kernel"
    DEPTHWISE = "depthwise conv kernel"
    VECTOR = "norm weight or other 1-D vector"
    CHANNEL_VECTOR = "per-channel vector broadcast over a feature map"  # written [1, C, 1, 1]
    INPUT_PROJECTION = "embedder input projection"
    MATRIX = "matrix"
    AUDIO_CONV = "audio conv kernel"


@dataclass(frozen=True)
class ProjectorRule:
    """``fixed`` always; else the request if ``runnable`` allows it (None: any), else
    ``fallback`` (with a warning saying ``why``). ``beyond_f16`` replaces F16 for a tensor whose
    values F16 cannot hold."""

    why: str
    fixed: GGMLType | None = None
    runnable: frozenset[GGMLType] | None = None
    fallback: GGMLType = GGMLType.F16
    beyond_f16: GGMLType = GGMLType.F32


_CONVERTER = "as llama.cpp's converter writes it (Gemma3nVisionAudioModel / ConformerAudioModel)"

PROJECTOR_RULES: Mapping[Role, ProjectorRule] = MappingProxyType({
    Role.STEM_CONV: ProjectorRule(f"kept F32, {_CONVERTER}", fixed=GGMLType.F32),
    Role.INPUT_PROJECTION: ProjectorRule(f"kept F16, {_CONVERTER}", fixed=GGMLType.F16),
    Role.AUDIO_CONV: ProjectorRule(f"kept F32, {_CONVERTER}", fixed=GGMLType.F32),
    Role.VECTOR: ProjectorRule("kept F32 (llama.cpp reads vectors as F32)", fixed=GGMLType.F32),
    Role.CHANNEL_VECTOR: ProjectorRule("kept F32 (llama.cpp reads vectors as F32)", fixed=GGMLType.F32),
    # limits of ggml's CPU kernels
    Role.CONV: ProjectorRule("ggml's conv_2d runs only F32 or F16 kernels",
                             runnable=frozenset({GGMLType.F32, GGMLType.F16})),
    Role.DEPTHWISE: ProjectorRule("ggml's depthwise conv runs only F16 or BF16 kernels "
                                  "(F32 ones abort the CPU scheduler)",
                                  runnable=frozenset({GGMLType.F16, GGMLType.BF16}), beyond_f16=GGMLType.BF16),
    Role.MATRIX: ProjectorRule("any type llama.cpp's matrix product runs"),
})


@dataclass(frozen=True)
class ProjectorType:
    """The type a role gets for a request, why, and whether the request was overruled (warned)."""

    qtype: GGMLType
    reason: str
    overruled: bool = False


def projector_type(role: Role, ne0: int, requested: GGMLType) -> ProjectorType:
    """The type ``convert --mmproj-type <requested>`` writes a tensor of ``role`` whose rows hold
    ``ne0`` values in."""
    rule = PROJECTOR_RULES[role]
    if rule.fixed is not None:
        return ProjectorType(rule.fixed, f"{role.value}: {rule.why}")
    if rule.runnable is not None and requested not in rule.runnable:
        return ProjectorType(rule.fallback, f"{role.value}s written {rule.fallback.name} instead of "
                                            f"{requested.name}: {rule.why}", overruled=True)
    block = GGML_QUANT_SIZES[requested][0]
    if ne0 % block:
        return ProjectorType(GGMLType.F16, f"{role.value}s written F16: rows of {ne0} do not fill "
                                           f"{requested.name} blocks of {block}", overruled=True)
    return ProjectorType(requested, f"{role.value}: the requested --mmproj-type")


def widened(role: Role, name: str) -> ProjectorType:
    """The type of an F16-typed tensor whose largest value F16 cannot hold: one llama.cpp still runs."""
    wide = PROJECTOR_RULES[role].beyond_f16
    return ProjectorType(wide, f"{name} written {wide.name}: its values exceed the F16 range", overruled=True)
