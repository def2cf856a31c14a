"""The text GGUF the converter describes: its checked config, key-values and encoded rows.

``convert`` writes this file; the one-pass quantizer reads a checkpoint as if it were this
file (never written), so both take these definitions from here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gguf import GGUFWriter
from gguf import GGMLQuantizationType as GGMLType

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.encode import bf16_words_finite, encode_rows
from gemma3n_gguf.core.errors import ConfigError, ConversionError
from gemma3n_gguf.model.config import TextConfig, llama_cpp_violations
from gemma3n_gguf.model.metadata import add_text_metadata, model_name
from gemma3n_gguf.model.sources import Copy, PadRows
from gemma3n_gguf.model.text_plan import PlannedTensor, TextPlan
from gemma3n_gguf.model.vocab import read_vocab, write_vocab


def load_checked_config(ckpt: Checkpoint, force: bool) -> tuple[TextConfig, list[str]]:
    """The text config, refused if llama.cpp would run it wrongly (unless ``force``)."""
    cfg = TextConfig.from_hf(ckpt.config)
    violations = llama_cpp_violations(cfg)
    if violations and not force:
        listing = "\n".join(f"  - {v}" for v in violations)
        raise ConfigError(
            "this checkpoint departs from what llama.cpp hard-codes for gemma3n:\n"
            f"{listing}\n  pass --force to write the file anyway"
        )
    return cfg, [f"writing anyway: {v}" for v in violations]


def text_metadata(ckpt: Checkpoint, cfg: TextConfig, plan: TextPlan, outtype: str) -> Callable[[GGUFWriter], None]:
    """The key-values ``convert --outtype <outtype>`` writes (the quantizer reproduces them)."""
    vocab = read_vocab(ckpt.directory, cfg.vocab_size, ckpt.config)
    name = model_name(ckpt.directory, ckpt.config)
    name_or_path = str(ckpt.config.get("_name_or_path", ""))
    hub_id = name_or_path if "/" in name_or_path else None
    n_params = sum(t.n_elements for t in plan.tensors)

    def add(w: GGUFWriter) -> None:
        add_text_metadata(w, cfg, name=name, outtype=outtype, n_params=n_params, hub_id=hub_id)
        write_vocab(w, vocab)

    return add


def is_bf16_copy(ckpt: Checkpoint, t: PlannedTensor) -> bool:
    """The tensor's values are one checkpoint tensor's bf16 words (they may pass through raw)."""
    return isinstance(t.source, (Copy, PadRows)) and t.source.raw_dtype(ckpt) == "BF16"


def checked_bf16_words(ckpt: Checkpoint, t: PlannedTensor, start: int, stop: int) -> np.ndarray:
    words = t.source.rows(ckpt, start, stop, raw=True)
    if not bf16_words_finite(words):
        raise ConversionError(f"tensor {t.name} contains NaN or infinite values; the checkpoint is corrupt")
    return words


def stored_type(ckpt: Checkpoint, t: PlannedTensor) -> GGMLType:
    """The type the checkpoint holds ``t``'s values in (F32 for values computed here)."""
    return GGMLType[t.source.raw_dtype(ckpt)]


def encoded_rows(ckpt: Checkpoint, t: PlannedTensor, qtype: GGMLType, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` (numpy axis 0) of ``t`` encoded as ``qtype``, as the converter
    writes them (bf16 to BF16 is copied word for word, with no float round trip)."""
    if qtype == GGMLType.BF16 and is_bf16_copy(ckpt, t):
        return checked_bf16_words(ckpt, t, start, stop)
    return encode_rows(t.source.rows(ckpt, start, stop), qtype, t.name)
