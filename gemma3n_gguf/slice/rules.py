"""The rules of a MatFormer slice, as pure functions of the checkpoint's text config.

A slice keeps some layers (renumbered in order) and gives each kept layer an FFN width no larger
than its own. Its weights are prefixes and blocks of the original ones: gate/up keep their first
``w`` rows, down its first ``w`` columns, the PLE table and ``per_layer_model_projection`` the
256-wide blocks of the kept layers. The config follows: layer count, per-layer widths, layer
types, sparsity pattern (each kept layer keeps its own) and the number of KV-shared layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.model.names import TEXT_PREFIX as TEXT


@dataclass(frozen=True)
class SliceRequest:
    """What the user asked for: widths per kept layer and the original layers to skip."""

    widths: tuple[int, ...]
    skipped: tuple[int, ...] = ()
    name: str | None = None  # the official configuration's slug, if any


@dataclass(frozen=True)
class Slice:
    """A checked slice of one checkpoint."""

    kept: tuple[int, ...]  # original indices of the kept layers, in order
    widths: tuple[int, ...]  # per kept layer
    source_layers: int
    ple_dim: int
    name: str | None = None

    @property
    def skipped(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.source_layers) if i not in set(self.kept))

    @property
    def num_layers(self) -> int:
        return len(self.kept)


def kv_source_layers(cfg: TextConfig) -> tuple[int, ...]:
    """The layers whose K/V the KV-shared layers reuse: the last layer of each attention type
    before the first shared layer (as transformers picks them)."""
    first = cfg.first_shared_layer
    if cfg.num_kv_shared_layers == 0:
        return ()
    before = cfg.layer_types[:first]
    needed = set(cfg.layer_types[first:])
    return tuple(sorted(max(i for i, t in enumerate(before) if t == kind) for kind in needed if kind in before))


def resolve(request: SliceRequest, cfg: TextConfig) -> Slice:
    """The slice of ``cfg`` that ``request`` describes; a ConfigError names the first rule broken."""
    n = cfg.num_layers
    skipped = sorted(set(request.skipped))
    if len(skipped) != len(request.skipped):
        raise ConfigError(f"--skip-layers lists a layer twice: {list(request.skipped)}")
    outside = [i for i in skipped if not 0 <= i < n]
    if outside:
        raise ConfigError(f"cannot skip layer(s) {outside}: the checkpoint has layers 0-{n - 1}")
    sources = [i for i in skipped if i in kv_source_layers(cfg)]
    if sources:
        raise ConfigError(f"cannot skip layer(s) {sources}: KV-shared layers {cfg.first_shared_layer}-{n - 1} "
                          "reuse their K/V (rule: never skip the KV source layers)")
    kept = tuple(i for i in range(n) if i not in set(skipped))
    if not kept:
        raise ConfigError("cannot skip every layer")
    widths = tuple(request.widths)
    if len(widths) != len(kept):
        raise ConfigError(f"{len(widths)} FFN widths given for {len(kept)} kept layers ({n} layers, "
                          f"{len(skipped)} skipped): give one width per kept layer")
    bad = [(pos, w) for pos, w in enumerate(widths) if w <= 0]
    if bad:
        raise ConfigError(f"FFN width {bad[0][1]} at kept layer {bad[0][0]} is not positive")
    wide = [(pos, w, cfg.intermediate_sizes[i]) for pos, (i, w) in enumerate(zip(kept, widths))
            if w > cfg.intermediate_sizes[i]]
    if wide:
        pos, w, have = wide[0]
        raise ConfigError(f"FFN width {w} at kept layer {pos} exceeds the checkpoint's {have} "
                          "(rule: a slice only narrows a layer)")
    return Slice(kept, widths, n, cfg.ple_dim, request.name)


# -- the config --------------------------------------------------------------------------------


def sliced_text_config(text: dict, cfg: TextConfig, s: Slice) -> dict:
    """The HF ``text_config`` of the slice (every per-layer list rebuilt from the kept layers)."""
    shared_skipped = sum(1 for i in s.skipped if i >= cfg.first_shared_layer)
    out = dict(text)
    out["num_hidden_layers"] = s.num_layers
    out["intermediate_size"] = list(s.widths)
    out["layer_types"] = [cfg.layer_types[i] for i in s.kept]
    out["num_kv_shared_layers"] = cfg.num_kv_shared_layers - shared_skipped
    sparsity = list(cfg.activation_sparsity) + [0.0] * (cfg.num_layers - len(cfg.activation_sparsity))
    out["activation_sparsity_pattern"] = [sparsity[i] for i in s.kept]
    return out


def sliced_config(config: dict, cfg: TextConfig, s: Slice) -> dict:
    """The whole config.json of the slice (a text-only config or one with ``text_config``)."""
    if "text_config" in config:
        return {**config, "text_config": sliced_text_config(config["text_config"], cfg, s)}
    return sliced_text_config(config, cfg, s)


# -- the tensors -------------------------------------------------------------------------------

_LAYER = re.compile(re.escape(TEXT) + r"layers\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Whole:
    """The tensor as it is."""

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def source_rows(self, start: int, stop: int) -> list[tuple[int, int]]:
        return [(start, stop)]

    def cut(self, rows: np.ndarray) -> np.ndarray:
        return rows


@dataclass(frozen=True)
class RowPrefix(Whole):
    """The first ``width`` rows (gate_proj, up_proj)."""

    width: int

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.width, *shape[1:])


@dataclass(frozen=True)
class ColumnPrefix(Whole):
    """The first ``width`` columns of every row (down_proj)."""

    width: int

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], self.width)

    def cut(self, rows: np.ndarray) -> np.ndarray:
        return rows[:, : self.width]


@dataclass(frozen=True)
class RowBlocks(Whole):
    """The ``block``-row blocks of the kept layers (per_layer_model_projection: [L*256, E])."""

    kept: tuple[int, ...]
    block: int

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (len(self.kept) * self.block, *shape[1:])

    def source_rows(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Original row runs holding new rows ``[start, stop)``, one per kept layer touched."""
        runs = []
        for pos in range(start // self.block, -(-stop // self.block)):
            lo, hi = max(start, pos * self.block), min(stop, (pos + 1) * self.block)
            offset = (self.kept[pos] - pos) * self.block
            runs.append((lo + offset, hi + offset))
        return runs


@dataclass(frozen=True)
class ColumnBlocks(Whole):
    """The ``block``-column blocks of the kept layers (embed_tokens_per_layer: [V, L*256])."""

    kept: tuple[int, ...]
    block: int

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], len(self.kept) * self.block)

    def cut(self, rows: np.ndarray) -> np.ndarray:
        layered = rows.reshape(rows.shape[0], -1, self.block)
        return layered[:, list(self.kept), :].reshape(rows.shape[0], -1)


Cut = Whole | RowPrefix | ColumnPrefix | RowBlocks | ColumnBlocks

# (name suffix inside a layer, cut maker from the kept layer's width)
_FFN_CUTS = {
    "mlp.gate_proj.weight": RowPrefix,
    "mlp.up_proj.weight": RowPrefix,
    "mlp.down_proj.weight": ColumnPrefix,
}


def tensor_map(names: list[str], s: Slice) -> dict[str, tuple[str, Cut]]:
    """Every tensor of the slice: its name -> (the original tensor, the cut applied to it).
    Tensors of skipped layers are absent; kept layers are renumbered."""
    new_index = {orig: pos for pos, orig in enumerate(s.kept)}
    global_cuts: dict[str, Cut] = {
        TEXT + "per_layer_model_projection.weight": RowBlocks(s.kept, s.ple_dim),
        TEXT + "embed_tokens_per_layer.weight": ColumnBlocks(s.kept, s.ple_dim),
    }
    out: dict[str, tuple[str, Cut]] = {}
    for name in names:
        match = _LAYER.match(name)
        if match is None:
            out[name] = (name, global_cuts.get(name, Whole()))
            continue
        orig, rest = int(match[1]), match[2]
        if orig not in new_index:
            continue
        pos = new_index[orig]
        make = _FFN_CUTS.get(rest)
        out[f"{TEXT}layers.{pos}.{rest}"] = (name, make(s.widths[pos]) if make else Whole())
    return out
