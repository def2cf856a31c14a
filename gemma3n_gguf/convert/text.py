"""Convert a Gemma 3n checkpoint's text model into a GGUF file llama.cpp runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType

from ..errors import ConfigError, ConversionError
from ..gguf_stream import Progress, chunked_rows, write_gguf
from .checkpoint import Checkpoint
from .config import TextConfig, llama_cpp_violations
from .encode import bf16_words_finite, encode_rows
from .metadata import add_text_metadata, model_name
from .plan import OUTTYPES, PlannedTensor, TextPlan, build_text_plan
from .sources import Copy, PadRows
from .vocab import read_vocab, write_vocab


@dataclass
class ConversionResult:
    path: Path
    plan: TextPlan
    config: TextConfig
    warnings: list[str] = field(default_factory=list)

    @property
    def n_tensors(self) -> int:
        return len(self.plan.tensors)


def default_output(checkpoint_dir: Path, name: str, outtype: str) -> Path:
    return checkpoint_dir / f"{name}-{outtype.upper()}.gguf"


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


def convert(
    checkpoint_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    outtype: str = "f16",
    force: bool = False,
    exact_mm_tokens: bool = False,
    on_progress: Progress | None = None,
) -> ConversionResult:
    """Convert the text model of a Gemma 3n checkpoint into one GGUF file.

    ``exact_mm_tokens`` makes llama.cpp embed the multimodal hard tokens (``<end_of_image>``
    and the rest of the vision/audio id ranges) as transformers does, at the cost of an untied
    ``output.weight`` (vocab x hidden more; see ``build_text_plan``).

    Tensors are streamed one at a time (the PLE table in row chunks); nothing is written
    at ``output`` unless the whole file is complete.
    """
    if outtype not in OUTTYPES:
        raise ConfigError(f"unknown --outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    ckpt = Checkpoint(checkpoint_dir)
    cfg, warnings = load_checked_config(ckpt, force)
    plan = build_text_plan(ckpt, cfg, outtype, exact_mm_tokens=exact_mm_tokens)
    name = model_name(ckpt.directory, ckpt.config)
    dest = Path(output) if output else default_output(ckpt.directory, name, outtype)
    metadata = text_metadata(ckpt, cfg, plan, outtype)
    write_gguf(dest, "gemma3n", metadata, plan.tensors, lambda t: tensor_bytes(ckpt, t), on_progress)
    return ConversionResult(dest, plan, cfg, warnings)


def text_metadata(ckpt: Checkpoint, cfg: TextConfig, plan: TextPlan, outtype: str) -> Callable[[GGUFWriter], None]:
    """The key-values ``convert --outtype <outtype>`` writes (the quantizer reproduces them)."""
    vocab = read_vocab(ckpt.directory, cfg.vocab_size)
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


def encoded_rows(ckpt: Checkpoint, t: PlannedTensor, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of ``t`` encoded as the converter writes them (bf16 to BF16 is
    copied word for word, with no float round trip)."""
    if t.qtype == GGMLQuantizationType.BF16 and is_bf16_copy(ckpt, t):
        return checked_bf16_words(ckpt, t, start, stop)
    return encode_rows(t.source.rows(ckpt, start, stop), t.qtype, t.name)


def tensor_bytes(ckpt: Checkpoint, t: PlannedTensor) -> Iterator[np.ndarray]:
    """The encoded bytes of one planned tensor, a row chunk at a time."""
    row_elems = max(1, t.n_elements // t.shape[0])
    for start, stop in chunked_rows(t.shape[0], row_elems * 4):
        yield encoded_rows(ckpt, t, start, stop)
