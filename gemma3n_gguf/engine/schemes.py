"""Quantization schemes: llama-quantize's presets as one table.

A scheme is what llama.cpp calls a file type (``llama_ftype``): the number written to
``general.file_type`` plus the default tensor type that the per-tensor rules of
:mod:`.rules` start from. Names and aliases follow ``tools/quantize/quantize.cpp``. The
converter's outtypes are schemes too, typed by their own rule tables.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gguf import GGMLQuantizationType as GGMLType
from gguf import LlamaFileType as F

from gemma3n_gguf.core.errors import ConfigError, QuantizationError
from gemma3n_gguf.core.ggml import FLOAT_TYPES


class RuleTable(enum.Enum):
    """Which rule table types a scheme's tensors."""

    LLAMA_QUANTIZE = "llama-quantize"  # rules.py: llama_tensor_get_type
    CONVERT = "convert"  # convert_rules.py: the text GGUF of ``convert --outtype``
    PROJECTOR = "projector"  # projector_rules.py: the projector of ``convert --mmproj-type``


@dataclass(frozen=True)
class Scheme:
    """One preset: its CLI name, its llama_ftype and the tensor type its rules start from."""

    name: str
    ftype: F
    default_type: GGMLType
    rule_table: RuleTable = RuleTable.LLAMA_QUANTIZE

    @property
    def is_quantized(self) -> bool:
        """False for F32/F16/BF16, whose files get no per-tensor mixing rules."""
        return self.default_type not in FLOAT_TYPES


_TABLE: tuple[Scheme, ...] = (
    Scheme("F32", F.ALL_F32, GGMLType.F32),
    Scheme("F16", F.MOSTLY_F16, GGMLType.F16),
    Scheme("BF16", F.MOSTLY_BF16, GGMLType.BF16),
    Scheme("Q8_0", F.MOSTLY_Q8_0, GGMLType.Q8_0),
    Scheme("Q4_0", F.MOSTLY_Q4_0, GGMLType.Q4_0),
    Scheme("Q4_1", F.MOSTLY_Q4_1, GGMLType.Q4_1),
    Scheme("Q5_0", F.MOSTLY_Q5_0, GGMLType.Q5_0),
    Scheme("Q5_1", F.MOSTLY_Q5_1, GGMLType.Q5_1),
    Scheme("Q2_K", F.MOSTLY_Q2_K, GGMLType.Q2_K),
    Scheme("Q2_K_S", F.MOSTLY_Q2_K_S, GGMLType.Q2_K),
    Scheme("Q3_K_S", F.MOSTLY_Q3_K_S, GGMLType.Q3_K),
    Scheme("Q3_K_M", F.MOSTLY_Q3_K_M, GGMLType.Q3_K),
    Scheme("Q3_K_L", F.MOSTLY_Q3_K_L, GGMLType.Q3_K),
    Scheme("Q4_K_S", F.MOSTLY_Q4_K_S, GGMLType.Q4_K),
    Scheme("Q4_K_M", F.MOSTLY_Q4_K_M, GGMLType.Q4_K),
    Scheme("Q5_K_S", F.MOSTLY_Q5_K_S, GGMLType.Q5_K),
    Scheme("Q5_K_M", F.MOSTLY_Q5_K_M, GGMLType.Q5_K),
    Scheme("Q6_K", F.MOSTLY_Q6_K, GGMLType.Q6_K),
    Scheme("IQ4_NL", F.MOSTLY_IQ4_NL, GGMLType.IQ4_NL),
    Scheme("IQ4_XS", F.MOSTLY_IQ4_XS, GGMLType.IQ4_XS),
)

SCHEMES: Mapping[str, Scheme] = MappingProxyType({s.name: s for s in _TABLE})

# The converter's types, with the file type llama.cpp's converter writes for each.
_CONVERTER_TYPES = (("f32", F.ALL_F32, GGMLType.F32), ("f16", F.MOSTLY_F16, GGMLType.F16),
                    ("bf16", F.MOSTLY_BF16, GGMLType.BF16), ("q8_0", F.MOSTLY_Q8_0, GGMLType.Q8_0))

# ``convert --outtype``: the text GGUF, typed by the converter's rule table.
CONVERT_SCHEMES: Mapping[str, Scheme] = MappingProxyType({
    outtype: Scheme(outtype.upper(), ftype, qtype, RuleTable.CONVERT) for outtype, ftype, qtype in _CONVERTER_TYPES
})

# ``convert --mmproj-type``: the projector, typed by the projector's rule table.
PROJECTOR_SCHEMES: Mapping[str, Scheme] = MappingProxyType({
    outtype: Scheme(outtype.upper(), ftype, qtype, RuleTable.PROJECTOR) for outtype, ftype, qtype in _CONVERTER_TYPES
})

# llama-quantize's CLI accepts these short names for the _M variants.
ALIASES: Mapping[str, str] = MappingProxyType({"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"})


def get_scheme(name: str | Scheme) -> Scheme:
    """Look a scheme up by name (case-insensitive, aliases allowed)."""
    if isinstance(name, Scheme):
        return name
    key = name.strip().upper()
    key = ALIASES.get(key, key)
    try:
        return SCHEMES[key]
    except KeyError:
        choices = ", ".join(SCHEMES)
        raise QuantizationError(f"unknown scheme {name!r}; choose one of: {choices}") from None


def convert_scheme(outtype: str) -> Scheme:
    """The scheme of ``convert --outtype <outtype>`` (f32, f16, bf16 or q8_0)."""
    try:
        return CONVERT_SCHEMES[outtype]
    except KeyError:
        raise ConfigError(f"unknown --outtype {outtype!r}; choose one of {', '.join(CONVERT_SCHEMES)}") from None


def projector_scheme(mmproj_type: str) -> Scheme:
    """The scheme of ``convert --mmproj-type <mmproj_type>`` (f32, f16, bf16 or q8_0)."""
    try:
        return PROJECTOR_SCHEMES[mmproj_type]
    except KeyError:
        raise ConfigError(f"unknown --mmproj-type {mmproj_type!r}; choose one of {', '.join(PROJECTOR_SCHEMES)}") from None


def scheme_for_ftype(ftype: int) -> Scheme:
    """The scheme whose ``general.file_type`` number is ``ftype``."""
    for scheme in _TABLE:
        if scheme.ftype == ftype:
            return scheme
    raise QuantizationError(f"file type {ftype} is not one of the supported schemes")


def parse_tensor_type(name: str | GGMLType) -> GGMLType:
    """A ggml tensor type from its name (``q6_k``, ``Q8_0``, ``bf16``), case-insensitive."""
    if isinstance(name, GGMLType):
        return name
    try:
        return GGMLType[name.strip().upper()]
    except KeyError:
        raise QuantizationError(f"unknown tensor type {name!r} (examples: Q8_0, Q6_K, F16)") from None
