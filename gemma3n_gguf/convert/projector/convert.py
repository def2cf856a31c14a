"""Convert a Gemma 3n checkpoint's vision and audio towers into a projector (mmproj) GGUF.

The file is what llama.cpp's mtmd loads next to the text GGUF: ``general.architecture =
clip``, ``general.type = mmproj``, the MobileNet-V5 vision tower and its embedder
(``gemma3nv``, which llama.cpp runs) and the USM conformer audio tower and its embedder
(``gemma3na``, which llama.cpp declares but cannot run; stored faithfully for other runtimes
and checked on the reference path by :mod:`gemma3n_gguf.validate.multimodal`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.core.atomic import refuse_input_as_output
from gemma3n_gguf.core.gguf_write import Progress, write_gguf
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.encode import encode_rows
from gemma3n_gguf.model.metadata import model_name
from gemma3n_gguf.convert.projector.config import ProjectorConfig, check_vision, read_projector_config
from gemma3n_gguf.convert.projector.metadata import add_mmproj_metadata
from gemma3n_gguf.convert.projector.plan import (
    MMPROJ_TYPES,
    MmprojPlan,
    MmprojTensor,
    build_mmproj_plan,
    has_audio_weights,
    has_vision_weights,
    widen_beyond_f16,
)
from gemma3n_gguf.convert.text import ConversionResult, convert, default_output


@dataclass
class MmprojResult:
    path: Path
    plan: MmprojPlan
    config: ProjectorConfig
    warnings: list[str] = field(default_factory=list)

    @property
    def n_tensors(self) -> int:
        return len(self.plan.tensors)

    @property
    def modalities(self) -> list[str]:
        return ["vision", "audio"] if self.plan.has_audio else ["vision"]


def default_mmproj_output(directory: Path, name: str, mmproj_type: str) -> Path:
    """``mmproj-<model>-F16.gguf``, the community's naming, in ``directory``."""
    return directory / f"mmproj-{name}-{mmproj_type.upper()}.gguf"


def plan_mmproj(checkpoint_dir: str | os.PathLike[str], mmproj_type: str = "f16") -> tuple[Checkpoint, ProjectorConfig, MmprojPlan]:
    """Read headers and configs, refuse what llama.cpp cannot run, and plan every tensor."""
    if mmproj_type not in MMPROJ_TYPES:
        raise ConfigError(f"unknown --mmproj-type {mmproj_type!r}; choose one of {', '.join(MMPROJ_TYPES)}")
    ckpt = Checkpoint(checkpoint_dir)
    if not has_vision_weights(ckpt):
        raise ConfigError(
            f"{ckpt.directory} has no vision tower weights (model.vision_tower.*): it is a text-only "
            "checkpoint, so there is no projector to write; convert it without --mmproj"
        )
    cfg = read_projector_config(ckpt.directory, ckpt.config, with_audio=has_audio_weights(ckpt))
    check_vision(cfg)
    return ckpt, cfg, build_mmproj_plan(ckpt, cfg, mmproj_type)


def _max_abs(ckpt: Checkpoint, t: MmprojTensor) -> float:
    # a second read of the projector's F16 tensors (small) so no F16 overflow reaches the file
    values = ckpt.read(t.hf_name)
    return float(np.abs(values).max()) if values.size else 0.0


def convert_mmproj(
    checkpoint_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    mmproj_type: str = "f16",
    on_progress: Progress | None = None,
) -> MmprojResult:
    """Write the projector GGUF of a multimodal Gemma 3n checkpoint.

    ``mmproj_type`` is f32, f16, bf16 or q8_0; tensors llama.cpp cannot run in that type are
    written in one it can (the result's warnings say which). Nothing is written at
    ``output`` unless the whole file is complete.
    """
    ckpt, cfg, plan = plan_mmproj(checkpoint_dir, mmproj_type)
    plan = widen_beyond_f16(plan, lambda t: _max_abs(ckpt, t))
    warnings = list(plan.warnings)
    if cfg.audio is None:
        warnings.append("the checkpoint has no audio tower weights: the projector holds vision only")
    elif cfg.audio.defaults_warning():
        warnings.append(cfg.audio.defaults_warning())
    name = model_name(ckpt.directory, ckpt.config)
    dest = Path(output) if output else default_mmproj_output(ckpt.directory, name, mmproj_type)
    refuse_input_as_output(dest, [ckpt.directory])

    def metadata(w: GGUFWriter) -> None:
        add_mmproj_metadata(w, cfg, plan, name=name, mmproj_type=mmproj_type)

    write_gguf(dest, "clip", metadata, plan.tensors, lambda t: _tensor_bytes(ckpt, t), on_progress)
    return MmprojResult(dest, plan, cfg, warnings)


def _tensor_bytes(ckpt: Checkpoint, t: MmprojTensor) -> Iterator[np.ndarray]:
    # projector tensors are small (the largest official one, an audio FFN matrix, has 9.4 M values)
    values = ckpt.read(t.hf_name).reshape(t.shape)
    yield encode_rows(values, t.qtype, t.name)


def convert_text_and_mmproj(
    checkpoint_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    outtype: str = "f16",
    mmproj_type: str = "f16",
    force: bool = False,
    exact_mm_tokens: bool = True,
    threads: int | None = None,
    on_progress: Progress | None = None,
) -> tuple[ConversionResult, MmprojResult]:
    """The text GGUF at ``output`` and the projector beside it (``mmproj-<model>-<TYPE>.gguf``).

    The projector is written first (it is small, and a checkpoint llama.cpp cannot run as a
    multimodal model fails there); if the text GGUF then fails, the projector is removed, so
    a failure leaves neither file.
    """
    ckpt_dir = Path(checkpoint_dir)
    name = model_name(ckpt_dir, Checkpoint(ckpt_dir).config)
    text_dest = Path(output) if output else default_output(ckpt_dir, name, outtype)
    mmproj = convert_mmproj(ckpt_dir, default_mmproj_output(text_dest.parent, name, mmproj_type),
                            mmproj_type=mmproj_type, on_progress=on_progress)
    try:
        text = convert(ckpt_dir, text_dest, outtype=outtype, force=force, exact_mm_tokens=exact_mm_tokens,
                       threads=threads, on_progress=on_progress)
    except BaseException:
        mmproj.path.unlink(missing_ok=True)
        raise
    return text, mmproj
