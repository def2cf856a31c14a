"""Convert a Gemma 3n checkpoint's text model into a GGUF file llama.cpp runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.core.gguf_write import Progress, write_gguf
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.model.metadata import model_name
from gemma3n_gguf.model.text_gguf import load_checked_config, tensor_bytes, text_metadata
from gemma3n_gguf.model.text_plan import OUTTYPES, TextPlan, build_text_plan


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
