"""Convert a Gemma 3n checkpoint's vision and audio towers into a projector (mmproj) GGUF.

The file is what llama.cpp's mtmd loads next to the text GGUF: ``general.architecture =
clip``, ``general.type = mmproj``, the MobileNet-V5 vision tower and its embedder
(``gemma3nv``, which llama.cpp runs) and the USM conformer audio tower and its embedder
(``gemma3na``, which llama.cpp declares but cannot run; stored faithfully for other runtimes
and checked on the reference path by :mod:`gemma3n_gguf.validate.multimodal`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGUFWriter

from gemma3n_gguf.core.atomic import refuse_input_as_output
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.core.ggml import thread_count
from gemma3n_gguf.core.gguf_write import Progress
from gemma3n_gguf.engine.fileplan import PlannedOutput, QuantizationPlan
from gemma3n_gguf.engine.inputs import ProjectorInput, projector_file_name
from gemma3n_gguf.engine.kv import collect_kv
from gemma3n_gguf.engine.pipeline import TensorJob, write_through_pipeline
from gemma3n_gguf.engine.schemes import projector_scheme
from gemma3n_gguf.model.metadata import model_name
from gemma3n_gguf.convert.projector.config import ProjectorConfig, check_vision, read_projector_config
from gemma3n_gguf.convert.projector.metadata import add_mmproj_metadata
from gemma3n_gguf.convert.projector.plan import MmprojPlan, build_mmproj_plan, has_audio_weights, has_vision_weights
from gemma3n_gguf.convert.text import ConversionResult, convert, default_output

ARCH = "clip"  # mtmd loads every projector as a clip model


@dataclass
class ProjectorPlan:
    """The projector before a byte is written: ``file`` is what ``--dry-run`` shows."""

    source: ProjectorInput  # the towers as the file to write, typed by the planner
    layout: MmprojPlan  # tensors, sources, roles, MobileNet-V5 blocks
    config: ProjectorConfig
    file: QuantizationPlan  # every tensor with its type and the rule that chose it, sizes, key-values


@dataclass
class MmprojResult:
    path: Path
    plan: MmprojPlan
    file_plan: QuantizationPlan  # what was written: types with their reasons, sizes
    config: ProjectorConfig
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1

    @property
    def n_tensors(self) -> int:
        return len(self.plan.tensors)

    @property
    def nbytes(self) -> int:
        return self.file_plan.tensor_bytes

    @property
    def modalities(self) -> list[str]:
        return ["vision", "audio"] if self.plan.has_audio else ["vision"]


def default_mmproj_output(directory: Path, name: str, mmproj_type: str) -> Path:
    """``mmproj-<model>-F16.gguf``, the community's naming, in ``directory``."""
    return directory / projector_file_name(name, mmproj_type)


def plan_mmproj(checkpoint_dir: str | os.PathLike[str], mmproj_type: str = "f16") -> ProjectorPlan:
    """Refuse what llama.cpp cannot run, then plan every tensor, its type and why, and the
    key-values. Reads headers, and the values of the tensors planned F16 (to widen any F16
    cannot hold)."""
    projector_scheme(mmproj_type)  # an unknown type is refused before anything is read
    ckpt = Checkpoint(checkpoint_dir)
    if not has_vision_weights(ckpt):
        raise ConfigError(
            f"{ckpt.directory} has no vision tower weights (model.vision_tower.*): it is a text-only "
            "checkpoint, so there is no projector to write; convert it without --mmproj"
        )
    cfg = read_projector_config(ckpt.directory, ckpt.config, with_audio=has_audio_weights(ckpt))
    check_vision(cfg)
    layout = build_mmproj_plan(ckpt, cfg)
    name = model_name(ckpt.directory, ckpt.config)

    def metadata(w: GGUFWriter) -> None:
        add_mmproj_metadata(w, cfg, layout, name=name, mmproj_type=mmproj_type)

    kv = collect_kv(metadata, ARCH)
    src = ProjectorInput(ckpt, layout.tensors, mmproj_type=mmproj_type, kv=kv)
    warnings = src.warnings + _audio_warnings(cfg)
    # the projector's converter writes every dimension of the numpy shape ([1, C, 1, 1] vectors)
    outputs = [PlannedOutput(t.name, t.shape, t.source_type, c.qtype, c.reason, every_dim=True)
               for t, c in zip(src.checkpoint_tensors, src.choices)]
    file = QuantizationPlan(source=src.label, scheme=src.scheme, tensors=outputs, kv=kv, warnings=warnings)
    return ProjectorPlan(src, layout, cfg, file)


def _audio_warnings(cfg: ProjectorConfig) -> list[str]:
    if cfg.audio is None:
        return ["the checkpoint has no audio tower weights: the projector holds vision only"]
    defaults = cfg.audio.defaults_warning()
    return [defaults] if defaults else []


def convert_mmproj(
    checkpoint_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    mmproj_type: str = "f16",
    threads: int | None = None,
    on_progress: Progress | None = None,
) -> MmprojResult:
    """Write the projector GGUF of a multimodal Gemma 3n checkpoint.

    ``mmproj_type`` is f32, f16, bf16 or q8_0; tensors llama.cpp cannot run in that type are
    written in one it can (the result's warnings say which). Rows go through the threaded
    write path of the text GGUF; the bytes do not depend on ``threads``. Nothing is written at
    ``output`` unless the whole file is complete.
    """
    planned = plan_mmproj(checkpoint_dir, mmproj_type)
    src, file = planned.source, planned.file
    dest = Path(output) if output else default_mmproj_output(src.ckpt.directory, src.name, mmproj_type)
    refuse_input_as_output(dest, [src.ckpt.directory])
    n_threads = thread_count(threads)
    jobs = [TensorJob(t.name, t.written_shape, t.qtype, convert=False) for t in file.tensors]
    started = time.perf_counter()
    write_through_pipeline(dest, ARCH, file.kv, src, jobs, n_threads, on_progress)
    return MmprojResult(dest, planned.layout, file, planned.config, file.warnings,
                        time.perf_counter() - started, n_threads)


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
                            mmproj_type=mmproj_type, threads=threads, on_progress=on_progress)
    try:
        text = convert(ckpt_dir, text_dest, outtype=outtype, force=force, exact_mm_tokens=exact_mm_tokens,
                       threads=threads, on_progress=on_progress)
    except BaseException:
        mmproj.path.unlink(missing_ok=True)
        raise
    return text, mmproj
