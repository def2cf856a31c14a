"""Ollama's PARAMETER names and value types, and the checks Ollama applies to a value.

The names are the JSON tags of Ollama's ``api.Options`` (runner and sampling options). A
Modelfile may only use names every Ollama since 0.9.3 (the first with gemma3n) accepts, so
names added later (``draft_num_predict``) and names Ollama deprecated are refused here
instead of being silently ignored or rejected by some versions. Values are checked the way
``api.FormatParams`` parses them: Go's ``strconv.ParseInt`` (base 10, 64 bits),
``ParseFloat`` (32 bits) and ``ParseBool``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

from gemma3n_gguf.core.errors import PackageError


class Kind(Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: Kind
    repeatable: bool = False  # Ollama collects every line into a list
    portable: bool = True  # accepted by every Ollama since 0.9.3


PARAMETERS: dict[str, Parameter] = {p.name: p for p in (
    Parameter("num_ctx", Kind.INT),
    Parameter("num_batch", Kind.INT),
    Parameter("num_gpu", Kind.INT),
    Parameter("main_gpu", Kind.INT),
    Parameter("use_mmap", Kind.BOOL),
    Parameter("num_thread", Kind.INT),
    Parameter("num_keep", Kind.INT),
    Parameter("seed", Kind.INT),
    Parameter("num_predict", Kind.INT),
    Parameter("top_k", Kind.INT),
    Parameter("top_p", Kind.FLOAT),
    Parameter("min_p", Kind.FLOAT),
    Parameter("typical_p", Kind.FLOAT),
    Parameter("repeat_last_n", Kind.INT),
    Parameter("temperature", Kind.FLOAT),
    Parameter("repeat_penalty", Kind.FLOAT),
    Parameter("presence_penalty", Kind.FLOAT),
    Parameter("frequency_penalty", Kind.FLOAT),
    Parameter("stop", Kind.STRING, repeatable=True),
    Parameter("draft_num_predict", Kind.INT, portable=False),
)}

# Ollama warns about these and ignores them.
DEPRECATED = frozenset({"penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
                        "mirostat", "mirostat_tau", "mirostat_eta"})

_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)
_GO_BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})
_INT64 = 2**63
_FLOAT32_MAX = 3.4028234663852886e38


def check_value(name: str, value: str) -> Parameter:
    """The table row for ``name`` once ``value`` parses as Ollama parses it; PackageError otherwise."""
    parameter = PARAMETERS.get(name)
    if name in DEPRECATED:
        raise PackageError(f"PARAMETER {name} is deprecated: Ollama ignores it; drop it")
    if parameter is None:
        raise PackageError(f"unknown PARAMETER {name!r}; Ollama accepts: {', '.join(sorted(PARAMETERS))}")
    if not parameter.portable:
        raise PackageError(f"PARAMETER {name} is not accepted by Ollama 0.9.3 (the first with gemma3n); drop it")
    if not _parses(parameter.kind, value):
        raise PackageError(f"PARAMETER {name} needs a {parameter.kind.value} value, got {value!r}")
    return parameter


def _parses(kind: Kind, value: str) -> bool:
    if kind is Kind.INT:
        return bool(_GO_INT.fullmatch(value)) and -_INT64 <= int(value) < _INT64
    if kind is Kind.FLOAT:
        return bool(_GO_FLOAT.fullmatch(value)) and (math.isnan(float(value)) or math.isinf(float(value))
                                                     or abs(float(value)) <= _FLOAT32_MAX)
    if kind is Kind.BOOL:
        return value in _GO_BOOLS
    return value != ""


def parse_assignments(assignments: list[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` strings from the command line, each checked; the first bad one raises."""
    pairs = []
    for text in assignments:
        name, sep, value = text.partition("=")
        if not sep:
            raise PackageError(f"--param {text!r} is not NAME=VALUE")
        check_value(name.strip(), value)
        pairs.append((name.strip(), value))
    return pairs


def format_number(value: float | int) -> str:
    """A sampling value as Ollama reads it back: integers without a fraction, floats in short form."""
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
