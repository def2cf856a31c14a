"""Quantize a checkpoint with several schemes and validate each against it: the size/quality table.

Every scheme is quantized straight from the checkpoint by the project's k-quant engine and
validated by one :class:`~.pipeline.Validator`, so the reference (transformers) pass runs at
most once for the whole sweep. Outputs (:mod:`.outputs`): ``sweep.md``, ``sweep.json``
and ``sweep.png`` (file size against mean KLD) in the output directory, beside the models.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gemma3n_gguf.quantize.onepass import quantize
from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.engine.schemes import get_scheme
from gemma3n_gguf.reference.evaltext import EvalText
from gemma3n_gguf.reference.mode import AUTO
from gemma3n_gguf.validate.pipeline import PhaseProgress, Validator
from gemma3n_gguf.validate.sweep.outputs import output_paths, write_outputs
from gemma3n_gguf.validate.sweep.result import SweepResult, SweepRow

DEFAULT_SCHEMES = ("Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")

ByteProgress = Callable[[int, int, str], None]
QuantizeFn = Callable[[Path, str, Path, ByteProgress | None], Path]
"""``(checkpoint_dir, scheme, output_gguf, on_progress) -> written path``."""

PathLike = str | os.PathLike[str]


def sweep(
    checkpoint_dir: PathLike,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    out_dir: PathLike = "sweep",
    *,
    text: PathLike | EvalText | None = None,
    n_ctx: int = 512,
    chunks: int | None = None,
    cache_dir: PathLike | None = None,
    quantize_fn: QuantizeFn | None = None,
    keep_models: bool = True,
    on_progress: PhaseProgress | None = None,
    reference_mode: str = AUTO,
    repack: bool = True,
) -> SweepResult:
    """Quantize ``checkpoint_dir`` with each scheme, validate each file, write the table and plot.

    ``quantize_fn`` defaults to the project's k-quant engine (:func:`project_quantizer`).
    Progress phases: ``"quantize <scheme>"`` (bytes), ``"reference"`` and ``"validate <scheme>"``.
    """
    names = [get_scheme(name).name for name in schemes]  # unknown names fail before any work
    if not names:
        raise ValidationError("no schemes to sweep; pass e.g. --schemes Q4_K_M,Q8_0")
    quantize = quantize_fn or project_quantizer()
    root, directory = Path(checkpoint_dir), Path(out_dir)
    validator = Validator(root, text=text, n_ctx=n_ctx, chunks=chunks, cache_dir=cache_dir,
                          reference_mode=reference_mode, repack=repack)
    rows, reports = [], []
    for scheme in names:
        started = time.perf_counter()
        model = quantize(root, scheme, directory / f"{root.name}-{scheme}.gguf",
                         _bytes_progress(on_progress, f"quantize {scheme}"))
        quantized = time.perf_counter()
        validator.on_progress = _renamed(on_progress, f"validate {scheme}")
        report = validator.validate(model)
        rows.append(SweepRow.from_report(scheme, report, quantized - started, time.perf_counter() - quantized))
        reports.append(report)
        if not keep_models:
            Path(model).unlink(missing_ok=True)
    result = SweepResult(str(root), tuple(rows), tuple(reports), validator.reference_runs,
                         output_paths(directory))
    write_outputs(result)
    return result


def project_quantizer() -> QuantizeFn:
    """The project's one-pass quantizer as a :data:`QuantizeFn`."""

    def run(checkpoint: Path, scheme: str, output: Path, on_progress: ByteProgress | None) -> Path:
        return quantize(checkpoint, output, scheme=scheme, on_progress=on_progress).path

    return run


def _renamed(on_progress: PhaseProgress | None, label: str) -> PhaseProgress | None:
    """Candidate progress relabelled per scheme; the reference phase keeps its name."""
    if on_progress is None:
        return None
    return lambda phase, done, total: on_progress(phase if phase == "reference" else label, done, total)


def _bytes_progress(on_progress: PhaseProgress | None, label: str) -> ByteProgress | None:
    if on_progress is None:
        return None
    return lambda done, total, what: on_progress(label, done, total)
