"""What a user may type to describe a slice: official names, width specs, layer lists.

Width specs come in three forms:

- a list of widths, ``8192,8192,16384,...``, or the compact form ``8192*20,16384*15`` (width*count);
- Google's bracketed list, ``[2_048 * 4, 2_048 * 8, ...]`` (each entry a product: one width);
- a whole row of Google's CSV (``name,# Layers,# Effective Params (B),MMLU,FFN Hidden Dims,Layers
  Skipped``), which also gives the skipped layers.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.slice.configs import E4B_LAYERS, OFFICIAL_CONFIGS, OfficialConfig, official_config
from gemma3n_gguf.slice.rules import SliceRequest

_INT = r"\d[\d_]*"
_PRODUCT = re.compile(rf"^{_INT}(\s*\*\s*{_INT})*$")
_CSV_FIELDS = 6
_CSV_WIDTHS, _CSV_SKIPPED = 4, 5


@dataclass(frozen=True)
class WidthSpec:
    widths: tuple[int, ...]
    skipped: tuple[int, ...] | None = None  # given by a CSV row
    name: str | None = None  # an official configuration named by a CSV row


def parse_width_spec(text: str) -> WidthSpec:
    """Widths (and, for a CSV row, skipped layers) from any of the three forms."""
    text = text.strip()
    if not text:
        raise ConfigError("empty --ffn-widths; give e.g. 8192*20,16384*15")
    if text.startswith("["):
        return WidthSpec(_bracketed(text))
    if '"' in text or "[" in text:
        return _csv_row(text)
    widths: list[int] = []
    for item in text.split(","):
        width, _, count = item.partition("*")
        widths += [_integer(width, text)] * (_integer(count, text) if count else 1)
    return WidthSpec(tuple(widths))


def parse_layer_list(text: str) -> tuple[int, ...]:
    """``20,21,22``, ``20-24`` or ``[20, 21, 22]``; empty for no layers."""
    layers: list[int] = []
    for item in text.strip().strip("[]").split(","):
        if not item.strip():
            continue
        first, dash, last = item.partition("-")
        lo = _integer(first, text)
        layers += range(lo, _integer(last, text) + 1) if dash else [lo]
    return tuple(layers)


def _bracketed(text: str) -> tuple[int, ...]:
    if not text.endswith("]"):
        raise ConfigError(f"unterminated width list {text[:40]!r}...: it must end with ']'")
    widths = []
    for item in text[1:-1].split(","):
        item = item.strip()
        if not _PRODUCT.match(item):
            raise ConfigError(f"cannot read {item!r} in the width list: expected a number or a product like 2_048 * 8")
        product = 1
        for factor in item.split("*"):
            product *= int(factor.replace("_", ""))
        widths.append(product)
    return tuple(widths)


def _csv_row(text: str) -> WidthSpec:
    rows = list(csv.reader([text]))
    fields = rows[0] if rows else []
    if len(fields) < _CSV_FIELDS - 1 or not fields[_CSV_WIDTHS].strip().startswith("["):
        raise ConfigError("cannot read the width spec: expected a list (8192,16384,...), a compact form "
                          "(8192*20,16384*15), a bracketed list ([2_048 * 4, ...]) or a row of Google's CSV")
    skipped = fields[_CSV_SKIPPED] if len(fields) > _CSV_SKIPPED else ""
    named = next((c.slug for c in OFFICIAL_CONFIGS if c.name.lower() == fields[0].strip().lower()), None)
    return WidthSpec(_bracketed(fields[_CSV_WIDTHS].strip()), parse_layer_list(skipped), named)


def _integer(text: str, spec: str) -> int:
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"cannot read {text.strip()!r} in {spec!r}: expected whole numbers") from None


# -- from options to a request -----------------------------------------------------------------


def official_request(config: OfficialConfig, cfg: TextConfig) -> SliceRequest:
    """An official configuration on this checkpoint: full width = the checkpoint's, half = half of it."""
    if cfg.num_layers != E4B_LAYERS:
        raise ConfigError(f"official configurations slice a {E4B_LAYERS}-layer E4B; this checkpoint has "
                          f"{cfg.num_layers} layers: give --ffn-widths instead")
    if len(set(cfg.intermediate_sizes)) != 1 or cfg.intermediate_sizes[0] % 2:
        raise ConfigError("official configurations need one even FFN width in every layer of the checkpoint "
                          f"(it has {sorted(set(cfg.intermediate_sizes))}): give --ffn-widths instead")
    return SliceRequest(config.widths(cfg.intermediate_sizes[0]), config.skipped, config.slug)


def slice_request(cfg: TextConfig, *, config: str | None = None, ffn_widths: str | None = None,
                  skip_layers: str | None = None) -> SliceRequest:
    """The request the ``slice`` options describe (exactly one of ``config`` and ``ffn_widths``)."""
    if (config is None) == (ffn_widths is None):
        raise ConfigError("give either --config NAME or --ffn-widths SPEC (see slice --list)")
    if config is not None:
        if skip_layers:
            raise ConfigError("--skip-layers goes with --ffn-widths; an official --config fixes its skipped layers")
        return official_request(official_config(config), cfg)
    spec = parse_width_spec(ffn_widths)
    if spec.skipped is not None and skip_layers:
        raise ConfigError("the CSV row already lists the skipped layers; drop --skip-layers")
    skipped = spec.skipped if spec.skipped is not None else parse_layer_list(skip_layers or "")
    return SliceRequest(spec.widths, skipped, spec.name)


def compact_widths(widths: tuple[int, ...]) -> str:
    """The compact form of a width list (``256*4,512,256*30``): what --ffn-widths reads back."""
    runs: list[list[int]] = []
    for w in widths:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    return ",".join(f"{w}*{n}" if n > 1 else str(w) for w, n in runs)
