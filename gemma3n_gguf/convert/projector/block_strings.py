"""timm's MobileNet block-string notation (``uir_r1_a5_k5_s2_e4_c640``), decoded without timm.

A ``vision_config.model_args.block_args`` may give a stage's blocks as these strings instead of
dicts. The projector only needs the fields llama.cpp's graph depends on, so the notation is a
table here (checked field by field against timm's ``decode_arch_def`` in the test suite) and a
projector conversion runs without timm installed.
"""

from __future__ import annotations

import re

from gemma3n_gguf.core.errors import ConfigError

# Options every block type takes: option letter -> (block_args field, parser).
COMMON_OPTIONS = {"c": ("out_chs", int), "s": ("stride", int)}

# Per block type: its own options, and the value of each field its string may leave out.
BLOCK_OPTIONS = {
    "er": {"k": ("exp_kernel_size", int), "e": ("exp_ratio", float), "se": ("se_ratio", float)},
    "uir": {"a": ("dw_kernel_size_start", int), "k": ("dw_kernel_size_mid", int),
            "p": ("dw_kernel_size_end", int), "e": ("exp_ratio", float), "se": ("se_ratio", float)},
    "mqa": {"k": ("dw_kernel_size", int), "h": ("num_heads", int), "d": ("key_dim", int),
            "v": ("kv_stride", int)},
}
BLOCK_DEFAULTS = {
    "er": {"se_ratio": 0.0},
    "uir": {"dw_kernel_size_start": 0, "dw_kernel_size_end": 0, "se_ratio": 0.0},
    "mqa": {"kv_stride": 1},
}

# The ``n`` option: timm's activation codes, by the name timm's get_act_layer takes.
ACTIVATIONS = {"re": "relu", "r6": "relu6", "hs": "hard_swish", "sw": "swish", "mi": "mish"}

_NUMERIC_OPTION = re.compile(r"(\D+)(\d.*)")


def decode_stages(stages: list[list[str]]) -> list[list[dict]]:
    """Block dicts of every stage, each ``_rN`` block repeated N times (timm's depth multiplier 1)."""
    return [[block for text in stage for block in _decode_repeated(text)] for stage in stages]


def _decode_repeated(text: str) -> list[dict]:
    block, repeats = decode_block(text)
    return [dict(block) for _ in range(repeats)]


def decode_block(text: str) -> tuple[dict, int]:
    """One block string as (block_args fields, repeat count)."""
    kind, *tokens = text.split("_")
    options, flags = _split_options(tokens)
    table = COMMON_OPTIONS | BLOCK_OPTIONS.get(kind, {})
    block = {"block_type": kind, "act_layer": ACTIVATIONS.get(options.pop("n", ""))} | BLOCK_DEFAULTS.get(kind, {})
    try:
        for letter, (field, parse) in table.items():
            if letter in options:
                block[field] = parse(options[letter])
        repeats = int(options.get("r", 1))
    except ValueError as exc:
        raise ConfigError(f"vision block string {text!r} is not timm notation llama.cpp can run ({exc})") from None
    if kind in BLOCK_OPTIONS:
        block["noskip"] = "noskip" in flags
    return block, repeats


def _split_options(tokens: list[str]) -> tuple[dict[str, str], set[str]]:
    options, flags = {}, set()
    for token in tokens:
        if token in ("noskip", "skip"):
            flags.add(token)
        elif token.startswith("n"):
            options["n"] = token[1:]
        elif match := _NUMERIC_OPTION.fullmatch(token):
            options[match[1]] = match[2]
    return options, flags
