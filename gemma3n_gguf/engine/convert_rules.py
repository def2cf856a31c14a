"""The converter's type rules, as data: what ``convert --outtype`` writes for each tensor.

These are the conventions of llama.cpp's own converter (``convert_hf_to_gguf.py``) for
gemma3n, not llama-quantize's mixing rules: vectors, norms and the AltUp coefficients stay
F32, and a matrix whose rows do not fill whole blocks of the requested type falls back to F16.
The planner (:mod:`.planner`) applies this table for the schemes of :data:`.schemes.CONVERT_SCHEMES`;
shapes are in ggml order (ne0 first), as everywhere in the planner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, MODEL_TENSOR, TENSOR_NAMES
from gguf import GGMLQuantizationType as GGMLType

# blk.N.<kind>.weight of these kinds is kept in F32 (llama.cpp's loader reads them as F32)
_F32_KIND_SUFFIXES = tuple("." + TENSOR_NAMES[kind].split(".")[-1] + ".weight"
                           for kind in (MODEL_TENSOR.ALTUP_CORRECT_COEF, MODEL_TENSOR.ALTUP_PREDICT_COEF))


@dataclass(frozen=True)
class ConvertRule:
    """``qtype`` (None: the requested outtype) when ``applies(name, shape, outtype)``."""

    qtype: GGMLType | None
    reason: str
    applies: Callable[[str, tuple[int, ...], GGMLType], bool]


def _rows_split_blocks(name: str, shape: tuple[int, ...], outtype: GGMLType) -> bool:
    return shape[0] % GGML_QUANT_SIZES[outtype][0] != 0


# First match wins.
CONVERT_RULES: tuple[ConvertRule, ...] = (
    ConvertRule(GGMLType.F32, "1-D tensor: kept F32", lambda name, shape, _: len(shape) == 1),
    ConvertRule(GGMLType.F32, "norm weight: kept F32", lambda name, shape, _: name.endswith("_norm.weight")),
    ConvertRule(GGMLType.F32, "AltUp coefficients: kept F32 (llama.cpp reads them as F32)",
                lambda name, shape, _: name.endswith(_F32_KIND_SUFFIXES)),
    ConvertRule(GGMLType.F16, "ne0 does not fill whole blocks of the outtype: F16", _rows_split_blocks),
    ConvertRule(None, "the requested --outtype", lambda name, shape, _: True),
)


def convert_type(name: str, shape: tuple[int, ...], outtype: GGMLType) -> tuple[GGMLType, str]:
    """The type ``convert --outtype`` writes a tensor in (``shape`` in ggml order), and why."""
    for rule in CONVERT_RULES:
        if rule.applies(name, shape, outtype):
            qtype = outtype if rule.qtype is None else rule.qtype
            return qtype, f"convert {outtype.name}: {rule.reason}"
    raise AssertionError("the last rule always applies")
