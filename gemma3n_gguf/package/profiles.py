"""Runtime profiles: what a quantized file and its layout must be for llama.cpp, Ollama or LM Studio.

``llama.cpp`` is llama-quantize's own output (byte-identical, nothing recorded). ``ollama`` keeps
the PLE table in a type every Ollama's GPU path gathers rows from (Ollama v0.9.3's CUDA
GET_ROWS: F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): the scheme's own type when it is one of
them, else F16 as Ollama's quantizer does. It also writes the integer keys Ollama's Go engine
read with exact type assertions as uint32 (an input GGUF made elsewhere may carry float32).
``lmstudio`` lays files out as ``publisher/model/`` with ``mmproj-*.gguf`` beside the model, the
only place LM Studio looks for a projector. Non-default profiles record their choices in the
GGUF under ``gemma3n_gguf.target*``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from gguf import GGMLQuantizationType as GGMLType
from gguf import GGUFValue, GGUFValueType

from gemma3n_gguf.core.errors import PackageError
from gemma3n_gguf.engine.inputs import QuantizeInput, open_input
from gemma3n_gguf.engine.planner import PlanOptions
from gemma3n_gguf.engine.schemes import Scheme, get_scheme
from gemma3n_gguf.quantize.onepass import QuantizeResult, plan_quantization, quantize

PLE = "per_layer_token_embd.weight"
OLLAMA_GET_ROWS_TYPES = frozenset({GGMLType.F32, GGMLType.F16, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0,
                                   GGMLType.Q5_1, GGMLType.Q8_0})
# Integer keys Ollama's Go engine (v0.9.3 - v0.24) read with exact uint32 type assertions.
OLLAMA_UINT32_KEYS = ("gemma3n.block_count", "gemma3n.context_length", "gemma3n.embedding_length",
                      "gemma3n.attention.head_count", "gemma3n.attention.head_count_kv",
                      "gemma3n.attention.key_length", "gemma3n.attention.value_length",
                      "gemma3n.attention.sliding_window", "gemma3n.attention.shared_kv_layers",
                      "gemma3n.altup.active_idx", "gemma3n.altup.num_inputs",
                      "gemma3n.embedding_length_per_layer_input")
TARGET_KEY = "gemma3n_gguf.target"
CHOICES_KEY = "gemma3n_gguf.target.choices"


@dataclass(frozen=True)
class Profile:
    name: str
    ple_types: frozenset[GGMLType] | None  # None: any type llama.cpp runs
    uint32_keys: tuple[str, ...]  # keys rewritten as uint32 when the input has them otherwise
    publisher_dirs: bool  # lay files out as publisher/model/
    writes_modelfiles: bool  # package writes Ollama Modelfiles
    ple_reader: str = ""  # what reads the PLE table by rows, when ple_types restricts its type

    @property
    def records(self) -> bool:
        return self.name != "llama.cpp"


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("llama.cpp", None, (), publisher_dirs=False, writes_modelfiles=True),
    Profile("ollama", OLLAMA_GET_ROWS_TYPES, OLLAMA_UINT32_KEYS, publisher_dirs=False, writes_modelfiles=True,
            ple_reader="Ollama's GPU path"),
    Profile("lmstudio", None, (), publisher_dirs=True, writes_modelfiles=False),
)}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise PackageError(f"unknown --target {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def profile_choices(profile: Profile, source, scheme: str | Scheme, options: PlanOptions,
                    **plan_options) -> tuple[PlanOptions, tuple[str, ...]]:
    """The options with the PLE type the profile gives ``scheme`` (the user's --ple-type when it
    is allowed), and the choice said in words."""
    if profile.ple_types is None:
        return options, ()
    allowed = ", ".join(t.name for t in sorted(profile.ple_types))
    if options.ple_type is not None:
        if options.ple_type not in profile.ple_types:
            raise PackageError(f"--ple-type {options.ple_type.name} cannot be gathered by row on "
                               f"{profile.ple_reader}; for --target {profile.name} use one of {allowed}")
        return options, (f"{PLE} {options.ple_type.name} (asked for)",)
    planned = plan_quantization(source, scheme=scheme, options=options, **plan_options)
    default = next(t.qtype for t in planned.tensors if t.name == PLE)
    if default in profile.ple_types:
        return options, (f"{PLE} {default.name} ({get_scheme(scheme).name}'s own; {profile.ple_reader} gathers it)",)
    return replace(options, ple_type=GGMLType.F16), (
        f"{PLE} F16, not {default.name}: {profile.ple_reader} gathers rows only from {allowed} "
        "(--ple-type Q8_0 halves it)",)


class ProfiledInput:
    """A quantize input whose key-values carry the profile's types and its record."""

    def __init__(self, inner: QuantizeInput, profile: Profile, choices: tuple[str, ...]):
        self._inner, self._profile, self._choices = inner, profile, choices
        self.label, self.tensors, self.warnings = inner.label, inner.tensors, inner.warnings

    def kv(self):
        kv = dict(self._inner.kv())
        for key in self._profile.uint32_keys:
            if key in kv and kv[key].type != GGUFValueType.UINT32:
                kv[key] = GGUFValue(_as_uint32(key, kv[key].value), GGUFValueType.UINT32)
        if self._profile.records:
            kv[TARGET_KEY] = GGUFValue(self._profile.name.encode(), GGUFValueType.STRING)
            kv[CHOICES_KEY] = GGUFValue(("; ".join(self._choices) or "none").encode(), GGUFValueType.STRING)
        return kv

    def units(self, name):
        return self._inner.units(name)

    def values(self, name, start, stop):
        return self._inner.values(name, start, stop)

    def stored(self, name, start, stop):
        return self._inner.stored(name, start, stop)

    def default_output(self, scheme):
        return self._inner.default_output(scheme)


def _as_uint32(key: str, value) -> int:
    if float(value) != int(value) or not 0 <= int(value) < 2**32:
        raise PackageError(f"{key} = {value!r} is not a uint32, which Ollama's reader needs")
    return int(value)


@dataclass(frozen=True)
class Targeted:
    """What to hand ``plan_quantization``/``quantize`` for a profile, and what the profile chose."""

    source: str | os.PathLike[str] | QuantizeInput
    options: PlanOptions
    choices: tuple[str, ...]


def target_quantization(profile: Profile, source: str | os.PathLike[str], *, scheme: str | Scheme,
                        options: PlanOptions, imatrix=None, allow_requantize: bool = False,
                        **input_options) -> Targeted:
    """The input (its key-values retyped and recorded when the profile asks) and options for ``scheme``."""
    chosen, choices = profile_choices(profile, source, scheme, options, imatrix=imatrix,
                                      allow_requantize=allow_requantize, **input_options)
    if not profile.records and not profile.uint32_keys:
        return Targeted(source, chosen, choices)
    return Targeted(ProfiledInput(open_input(source, **input_options), profile, choices), chosen, choices)


def quantize_for_target(profile: Profile, source: str | os.PathLike[str], output: Path | None, *,
                        scheme: str | Scheme, options: PlanOptions, imatrix=None, input_options: dict,
                        **quantize_options) -> tuple[QuantizeResult, tuple[str, ...]]:
    """``quantize`` under ``profile``; returns the result and the choices the profile made."""
    targeted = target_quantization(profile, source, scheme=scheme, options=options, imatrix=imatrix,
                                   allow_requantize=quantize_options.get("allow_requantize", False), **input_options)
    result = quantize(targeted.source, output, scheme=scheme, options=targeted.options, imatrix=imatrix,
                      **input_options, **quantize_options)
    return result, targeted.choices
