"""Convert a Gemma 3n checkpoint's text model into a GGUF file llama.cpp runs.

The same planner and write path as ``quantize``: the checkpoint, seen as the file
``convert --outtype`` writes (:class:`~gemma3n_gguf.engine.inputs.CheckpointInput`, typed by
the converter's rule table), goes through the threaded pipeline into the streaming writer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path


from gemma3n_gguf.core.atomic import refuse_input_as_output
from gemma3n_gguf.core.ggml import thread_count
from gemma3n_gguf.core.gguf_write import Progress
from gemma3n_gguf.engine.fileplan import PlannedOutput, QuantizationPlan
from gemma3n_gguf.engine.inputs import ARCH, CheckpointInput
from gemma3n_gguf.engine.pipeline import TensorJob, write_through_pipeline
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.model.text_plan import TextPlan


@dataclass
class ConversionResult:
    path: Path
    plan: TextPlan  # tensors, sources, what was dropped and synthesised
    file_plan: QuantizationPlan  # what was written: types with their reasons, sizes
    config: TextConfig
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1

    @property
    def n_tensors(self) -> int:
        return len(self.plan.tensors)

    @property
    def nbytes(self) -> int:
        return self.file_plan.tensor_bytes


def default_output(checkpoint_dir: Path, name: str, outtype: str) -> Path:
    return checkpoint_dir / f"{name}-{outtype.upper()}.gguf"


def plan_conversion(
    checkpoint_dir: str | os.PathLike[str],
    *,
    outtype: str = "f16",
    force: bool = False,
    exact_mm_tokens: bool = False,
) -> tuple[CheckpointInput, QuantizationPlan]:
    """The checkpoint as a model to write, and the file ``convert`` would write (``--dry-run``):
    every tensor with its type and the converter's rule that chose it. Reads headers only."""
    src = CheckpointInput(checkpoint_dir, intermediate=outtype, force=force, exact_mm_tokens=exact_mm_tokens)
    outputs = [PlannedOutput(t.name, t.shape, t.source_type, c.qtype, c.reason)
               for t, c in zip(src.checkpoint_tensors, src.choices)]
    plan = QuantizationPlan(source=src.label, scheme=src.scheme, tensors=outputs, kv=src.kv(),
                            warnings=list(src.warnings))
    return src, plan


def convert(
    checkpoint_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    outtype: str = "f16",
    force: bool = False,
    exact_mm_tokens: bool = False,
    threads: int | None = None,
    on_progress: Progress | None = None,
) -> ConversionResult:
    """Convert the text model of a Gemma 3n checkpoint into one GGUF file.

    ``exact_mm_tokens`` makes llama.cpp embed the multimodal hard tokens (``<end_of_image>``
    and the rest of the vision/audio id ranges) as transformers does, at the cost of an untied
    ``output.weight`` (vocab x hidden more; see ``build_text_plan``). ``threads`` encode row
    pieces in parallel (default: all usable cores); the bytes do not depend on it.

    Tensors are streamed in pieces of rows; nothing is written at ``output`` unless the whole
    file is complete.
    """
    src, plan = plan_conversion(checkpoint_dir, outtype=outtype, force=force, exact_mm_tokens=exact_mm_tokens)
    dest = Path(output) if output else default_output(src.ckpt.directory, src.name, outtype)
    refuse_input_as_output(dest, [src.ckpt.directory])
    n_threads = thread_count(threads)
    # the converter writes every dimension of the numpy shape (ggml order reversed), as
    # convert_hf_to_gguf.py does; each row piece is encoded by the input itself (convert=False)
    jobs = [TensorJob(t.name, tuple(reversed(t.shape)), t.qtype, convert=False) for t in plan.tensors]
    started = time.perf_counter()
    write_through_pipeline(dest, ARCH, plan.kv, src, jobs, n_threads, on_progress)
    return ConversionResult(dest, src.plan, plan, src.config, src.warnings,
                            time.perf_counter() - started, n_threads)
