"""Summarise a GGUF file: architecture, key metadata, tensor types and sizes by group."""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gguf import GGUFValueType

from gemma3n_gguf.core.gguf_read import GGUFFile, open_gguf
from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.model.runtimes import LLAMA_CPP, verdicts_from_gguf

__all__ = ["GGUFSummary", "field_value", "summarize"]

# First matching prefix names the group a tensor's bytes are counted in.
GROUPS: tuple[tuple[str, str], ...] = (
    ("per_layer_", "PLE"),
    ("token_embd", "embeddings"),
    ("output.", "embeddings"),
    ("output_norm", "layers"),
    ("blk.", "layers"),
    ("altup_", "altup"),
    ("v.", "vision"),
    ("a.", "audio"),
    ("mm.", "projector"),
)

OUR_KEY_PREFIX = "gemma3n_gguf."

TEXT_KEYS = (
    "block_count", "embedding_length", "feed_forward_length", "context_length", "attention.head_count",
    "attention.head_count_kv", "attention.key_length", "attention.sliding_window", "rope.freq_base",
    "rope.freq_base_swa", "attention.shared_kv_layers",
)


@dataclass
class GroupSize:
    tensors: int = 0
    elements: int = 0
    bytes: int = 0

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.bytes / self.elements if self.elements else 0.0


@dataclass
class GGUFSummary:
    path: str
    architecture: str
    file_bytes: int
    metadata: dict
    tensor_types: dict[str, int]
    groups: dict[str, GroupSize]
    total: GroupSize
    projector: dict | None = None
    tokenizer: dict = field(default_factory=dict)
    runtimes: dict[str, str] = field(default_factory=dict)  # gemma3n text: runtime -> yes / no: why

    def to_dict(self) -> dict:
        data = asdict(self)
        for g in [*data["groups"].values(), data["total"]]:
            g["bits_per_weight"] = round(8 * g["bytes"] / g["elements"], 4) if g["elements"] else 0.0
        return _json_safe(data)


def field_value(gguf: GGUFFile, key: str):
    """A key's value for display: arrays of strings (vocabularies) are summarised by their length."""
    field = gguf.fields.get(key)
    if field is not None and field.types[:2] == [GGUFValueType.ARRAY, GGUFValueType.STRING]:
        return f"[{len(field.data)} strings]"
    return gguf.value(key)


def group_of(name: str) -> str:
    return next((group for prefix, group in GROUPS if name.startswith(prefix)), "other")


def summarize(path: str | os.PathLike[str]) -> GGUFSummary:
    gguf = open_gguf(path)
    arch = field_value(gguf, "general.architecture") or "unknown"
    groups: dict[str, GroupSize] = defaultdict(GroupSize)
    types: Counter[str] = Counter()
    total = GroupSize()
    for t in gguf.tensors:
        g = groups[group_of(t.name)]
        for acc in (g, total):
            acc.tensors += 1
            acc.elements += int(t.n_elements)
            acc.bytes += int(t.n_bytes)
        types[t.tensor_type.name] += 1
    metadata = {k: field_value(gguf, k) for k in gguf.fields if k.startswith("general.")}
    metadata |= {f"{arch}.{k}": field_value(gguf, f"{arch}.{k}") for k in TEXT_KEYS if f"{arch}.{k}" in gguf.fields}
    # ours: a MatFormer slice's description and which runtimes run the file (yes, or no: why)
    metadata |= {k: field_value(gguf, k) for k in gguf.fields if k.startswith(OUR_KEY_PREFIX)}
    tokenizer = {}
    if "tokenizer.ggml.tokens" in gguf.fields:
        tokenizer = {"model": field_value(gguf, "tokenizer.ggml.model"),
                     "tokens": gguf.array_length("tokenizer.ggml.tokens"),
                     "chat_template": "tokenizer.chat_template" in gguf.fields}
    projector = None
    if arch == "clip":
        projector = projector_summary(gguf)
    runtimes = runtime_summary(gguf) if arch == "gemma3n" else {}
    return GGUFSummary(str(path), arch, Path(path).stat().st_size, metadata, dict(types), dict(groups), total,
                       projector, tokenizer, runtimes)


def runtime_summary(gguf: GGUFFile) -> dict[str, str]:
    """Which llama.cpp runs this gemma3n text file (``yes`` or ``no: why``), from its metadata."""
    kv = {k: gguf.value(k) for k in gguf.fields if k.startswith("gemma3n.")}
    laurel = next((int(t.shape[0]) for t in gguf.tensors if t.name == "blk.0.laurel_l.weight"), None)
    try:
        verdicts = verdicts_from_gguf(kv) if laurel is None else verdicts_from_gguf(kv, laurel)
    except ConfigError as exc:  # the loader would refuse the file before any graph is built
        return {LLAMA_CPP: f"no: {exc}"}
    return {v.runtime: v.text for v in verdicts}


def projector_summary(gguf: GGUFFile) -> dict:
    """Modalities, MobileNet-V5 blocks per stage, tokens per image and tensor types."""
    stages: Counter[int] = Counter()
    seen = set()
    types: dict[str, Counter[str]] = defaultdict(Counter)
    for t in gguf.tensors:
        parts = t.name.split(".")
        if t.name.startswith("v.blk.") and len(parts) > 3 and parts[2].isdigit() and (parts[2], parts[3]) not in seen:
            seen.add((parts[2], parts[3]))
            stages[int(parts[2])] += 1
        modality = "audio" if t.name.startswith(("a.", "mm.a.")) else "vision"
        types[modality][t.tensor_type.name] += 1
    image_size = field_value(gguf, "clip.vision.image_size")
    patch = field_value(gguf, "clip.vision.patch_size")
    vision = bool(field_value(gguf, "clip.has_vision_encoder"))
    audio = bool(field_value(gguf, "clip.has_audio_encoder"))
    return {
        "modalities": [m for m, present in (("vision", vision), ("audio", audio)) if present],
        "vision": vision,
        "audio": audio,
        "vision_projector": field_value(gguf, "clip.vision.projector_type"),
        "audio_projector": field_value(gguf, "clip.audio.projector_type"),
        "blocks_per_stage": [stages[s] for s in sorted(stages)],
        "image_size": image_size,
        "tokens_per_image": image_size // patch if _positive_ints(image_size, patch) else None,
        "types": {m: dict(sorted(c.items())) for m, c in types.items()},
    }


def _positive_ints(*values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
