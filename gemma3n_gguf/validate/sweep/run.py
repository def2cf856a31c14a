"""Quantize a checkpoint with several schemes and validate each against it: the size/quality table.

Every scheme is quantized straight from the checkpoint by the project's k-quant engine and
validated by one :class:`~.pipeline.Validator`, so the reference (transformers) pass runs at
most once for the whole sweep. Outputs (:mod:`.sweep_outputs`): ``sweep.md``, ``sweep.json``
and ``sweep.png`` (file size against mean KLD) in the output directory, beside the models.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma3n_gguf.quantize.onepass import quantize
from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.engine.schemes import get_scheme
from gemma3n_gguf.reference.evaltext import EvalText
from gemma3n_gguf.validate.pipeline import PhaseProgress, Validator
from gemma3n_gguf.validate.report import ValidationReport
from gemma3n_gguf.core.stats import Estimate, jsonable

DEFAULT_SCHEMES = ("Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")

ByteProgress = Callable[[int, int, str], None]
QuantizeFn = Callable[[Path, str, Path, ByteProgress | None], Path]
"""``(checkpoint_dir, scheme, output_gguf, on_progress) -> written path``."""

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class SweepRow:
    scheme: str
    path: str
    file_bytes: int
    bits_per_weight: float
    ppl_ratio: Estimate
    kld_mean: Estimate
    kld_p99: float
    same_top1: Estimate
    quantize_seconds: float
    validate_seconds: float

    @classmethod
    def from_report(cls, scheme: str, report: ValidationReport, quantize_seconds: float,
                    validate_seconds: float) -> SweepRow:
        k = report.kld
        return cls(scheme, report.model, report.model_bytes, report.bits_per_weight, k.ppl_ratio,
                   k.kld_mean, k.kld_percentiles["99"], k.same_top1, quantize_seconds, validate_seconds)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for name in ("ppl_ratio", "kld_mean", "same_top1"):
            data[name] = getattr(self, name).to_dict()
        return data


@dataclass(frozen=True)
class SweepResult:
    checkpoint: str
    rows: tuple[SweepRow, ...]
    reports: tuple[ValidationReport, ...]
    reference_runs: int
    """Transformers passes this sweep ran: 1, or 0 when the reference came from the cache."""
    outputs: dict[str, str]
    """``markdown``, ``json`` and ``plot`` paths."""

    def to_dict(self) -> dict[str, Any]:
        first = self.reports[0]
        return jsonable({
            "checkpoint": self.checkpoint,
            "text": {"name": first.text_name, "sha256": first.text_sha256},
            "n_ctx": first.n_ctx,
            "windows": first.n_windows,
            "scored_tokens": first.kld.n_tokens,
            "reference_runs": self.reference_runs,
            "rows": [row.to_dict() for row in self.rows],
            "outputs": self.outputs,
        })


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
) -> SweepResult:
    """Quantize ``checkpoint_dir`` with each scheme, validate each file, write the table and plot.

    ``quantize_fn`` defaults to the project's k-quant engine (:func:`project_quantizer`).
    Progress phases: ``"quantize <scheme>"`` (bytes), ``"reference"`` and ``"validate <scheme>"``.
    """
    from gemma3n_gguf.validate.sweep.outputs import output_paths, write_outputs

    names = [get_scheme(name).name for name in schemes]  # unknown names fail before any work
    if not names:
        raise ValidationError("no schemes to sweep; pass e.g. --schemes Q4_K_M,Q8_0")
    quantize = quantize_fn or project_quantizer()
    root, directory = Path(checkpoint_dir), Path(out_dir)
    validator = Validator(root, text=text, n_ctx=n_ctx, chunks=chunks, cache_dir=cache_dir)
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
