"""The text tensor plan: every GGUF tensor with its shape and source (its type is the engine's).

Building the plan reads only checkpoint headers. It proves the name map complete in both
directions (each checkpoint tensor is mapped or dropped on purpose, each tensor llama.cpp
requires is present or synthesised) and raises once with every problem listed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field


from gemma3n_gguf.core.errors import ConfigError, TensorMappingError
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.model.names import (
    NOT_IN_TEXT_GGUF,
    SYNTHESISED_IF_ABSENT,
    TEXT_PREFIX,
    TensorKind,
    classify,
    expected_gguf_names,
    gguf_name,
)
from gemma3n_gguf.model.sources import BakedHardTokens, Constant, Copy, HardTokenEmbedder, PadRows, Source, Stack

@dataclass(frozen=True)
class PlannedTensor:
    """A GGUF tensor and where its values come from; its type is the engine's choice
    (``engine.convert_rules`` for convert, llama-quantize's rules for quantize)."""

    name: str  # GGUF name
    shape: tuple[int, ...]  # numpy (HF) order; GGUF stores it reversed (ggml order)
    source: Source
    kind: TensorKind

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class TextPlan:
    tensors: list[PlannedTensor]
    dropped: list[str] = field(default_factory=list)  # checkpoint tensors left out on purpose
    synthesised: list[str] = field(default_factory=list)  # GGUF tensors made up (shared K/V)


def build_text_plan(ckpt: Checkpoint, cfg: TextConfig, *, ple_pad_row0: bool = False,
                    exact_mm_tokens: bool = False) -> TextPlan:
    """``exact_mm_tokens`` bakes the multimodal hard tokens into ``token_embd``, fills the
    padded PLE rows with row 0 and writes an untied ``output.weight`` (see BakedHardTokens)."""
    embedders = hard_token_embedders(ckpt, cfg) if exact_mm_tokens else ()
    ple_pad_row0 = ple_pad_row0 or exact_mm_tokens
    found: dict[str, Source] = {}
    stacks: dict[TensorKind, dict[int, str]] = defaultdict(dict)
    kinds: dict[str, TensorKind] = {}
    unmapped, dropped, beyond = [], [], []
    for hf_name in sorted(ckpt.tensors):
        if NOT_IN_TEXT_GGUF.match(hf_name):
            dropped.append(hf_name)
            continue
        mapped = classify(hf_name)
        if mapped is None:
            unmapped.append(hf_name)
            continue
        if mapped[1] is not None and mapped[1] >= cfg.num_layers:
            beyond.append(hf_name)
            continue
        kind, bid, index = mapped
        if index is not None:
            stacks[kind][index] = hf_name
            continue
        name = gguf_name(kind, bid)
        kinds[name] = kind
        found[name] = _source_for(kind, hf_name, cfg, ple_pad_row0, embedders)
    for kind, members in stacks.items():
        name = gguf_name(kind)
        kinds[name] = kind
        found[name] = Stack(tuple(members[i] for i in sorted(members)))

    synthesised = _synthesise_shared_kv(cfg, found, kinds)
    expected = expected_gguf_names(cfg.num_layers)
    if embedders:
        # the baked rows must not leak into the LM head, which transformers ties to embed_tokens
        found[gguf_name(TensorKind.OUTPUT)] = PadRows(TEXT_PREFIX + "embed_tokens.weight", cfg.vocab_size)
        kinds[gguf_name(TensorKind.OUTPUT)] = TensorKind.OUTPUT
        expected.add(gguf_name(TensorKind.OUTPUT))
    missing = sorted(expected - set(found))
    unmapped += sorted(set(found) - expected)  # a name-table slip: mapped to a name llama.cpp lacks
    if unmapped or missing or beyond:
        raise TensorMappingError(mapping_report(unmapped, missing, beyond))

    tensors = []
    for name in _ordered(found):
        shape = _shape_of(found[name], ckpt)
        tensors.append(PlannedTensor(name, shape, found[name], kinds[name]))
    return TextPlan(tensors, dropped, synthesised)


def _source_for(kind: TensorKind, hf_name: str, cfg: TextConfig, ple_pad_row0: bool,
                embedders: tuple[HardTokenEmbedder, ...]) -> Source:
    if kind is TensorKind.TOKEN_EMBD and embedders:
        return BakedHardTokens(hf_name, cfg.vocab_size, cfg.hidden_size, embedders)
    if kind is TensorKind.TOKEN_EMBD:
        return PadRows(hf_name, cfg.vocab_size)
    if kind is TensorKind.PER_LAYER_TOKEN_EMBD:
        return PadRows(hf_name, cfg.vocab_size, fill_with_row0=ple_pad_row0)
    return Copy(hf_name)


HARD_TOKEN_EMBEDDERS = (("vision_config", "model.embed_vision."), ("audio_config", "model.embed_audio."))


def hard_token_embedders(ckpt: Checkpoint, cfg: TextConfig) -> tuple[HardTokenEmbedder, ...]:
    """The checkpoint's vision and audio embedders whose hard tokens get baked."""
    found = []
    for config_key, prefix in HARD_TOKEN_EMBEDDERS:
        sub = ckpt.config.get(config_key)
        if not isinstance(sub, dict) or prefix + "embedding.weight" not in ckpt:
            continue
        first, size = int(sub["vocab_offset"]), int(sub["vocab_size"])
        if first < cfg.vocab_size_per_layer_input or first + size > cfg.vocab_size:
            raise ConfigError(f"{config_key} ids [{first}, {first + size}) fall outside the multimodal "
                              f"range [{cfg.vocab_size_per_layer_input}, {cfg.vocab_size})")
        found.append(HardTokenEmbedder(prefix, first, size, float(sub.get("rms_norm_eps", 1e-6))))
    if not found:
        raise ConfigError("exact multimodal tokens need embed_vision or embed_audio weights; this checkpoint "
                          "has neither (text-only): convert it without --exact-mm-tokens")
    return tuple(found)


def _synthesise_shared_kv(cfg: TextConfig, found: dict[str, Source], kinds: dict[str, TensorKind]) -> list[str]:
    kv_dim = cfg.num_kv_heads * cfg.head_dim
    shapes = {TensorKind.ATTN_K: ((kv_dim, cfg.hidden_size), 0.0), TensorKind.ATTN_V: ((kv_dim, cfg.hidden_size), 0.0),
              TensorKind.ATTN_K_NORM: ((cfg.head_dim,), 1.0)}
    made = []
    for bid in range(cfg.first_shared_layer, cfg.num_layers):
        for kind in SYNTHESISED_IF_ABSENT:
            name = gguf_name(kind, bid)
            if name not in found:
                shape, value = shapes[kind]
                found[name] = Constant(shape, value)
                kinds[name] = kind
                made.append(name)
    return made


def _shape_of(source: Source, ckpt: Checkpoint) -> tuple[int, ...]:
    if isinstance(source, Copy):
        return ckpt.ref(source.name).shape
    if isinstance(source, (PadRows, BakedHardTokens)):
        return (source.total_rows, *ckpt.ref(source.name).shape[1:])
    if isinstance(source, Stack):
        return (len(source.names), *ckpt.ref(source.names[0]).shape)
    return source.shape


def _ordered(found: dict[str, Source]) -> list[str]:
    """Global tensors first, then layers in numeric order (llama.cpp does not care, people do)."""

    def key(name: str):
        parts = name.split(".")
        return (1, int(parts[1]), name) if parts[0] == "blk" else (0, 0, name)

    return sorted(found, key=key)


def mapping_report(unmapped: list[str], missing: list[str], beyond: list[str] = (),
                   needs: str = "what llama.cpp's gemma3n model needs") -> str:
    """One message listing every unmapped and missing tensor, and those of layers past the config's."""
    lines = [f"the checkpoint's tensors do not match {needs}:"]
    if unmapped:
        lines.append(f"  {len(unmapped)} checkpoint tensor(s) have no GGUF name: {_listing(unmapped)}")
    if missing:
        lines.append(f"  {len(missing)} GGUF tensor(s) have no source in the checkpoint: {_listing(missing)}")
    if beyond:
        lines.append(f"  {len(beyond)} tensor(s) of layers beyond the config's num_hidden_layers: {_listing(beyond)}")
    lines.append("  is the checkpoint complete and is config.json the one saved with it?")
    return "\n".join(lines)


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")
