"""Rich tables of validation results, for the command line (built here, printed by the CLI)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from gemma3n_gguf.validate.gate.baseline import GateResult
from gemma3n_gguf.validate.multimodal.media import MediaParity
from gemma3n_gguf.validate.report import ReferencePass, ValidationReport
from gemma3n_gguf.core.stats import Estimate
from gemma3n_gguf.core.units import human_bytes
from gemma3n_gguf.validate.sweep.result import SweepResult

_KLD_LEVELS = ("max", "99.9", "99", "95", "90", "median")


def _pm(estimate: Estimate, digits: int = 4, scale: float = 1.0, unit: str = "") -> str:
    return f"{estimate.value * scale:.{digits}f} ± {estimate.uncertainty * scale:.{digits}f}{unit}"


def _pm_significant(estimate: Estimate) -> str:
    """For values spanning decades (PPL of random models, KLD of f32 files)."""
    return f"{estimate.value:.5g} ± {estimate.uncertainty:.2g}"


def report_table(report: ValidationReport) -> Table:
    """llama-perplexity's KLD-mode summary, with uncertainties."""
    k = report.kld
    title = (f"{Path(report.model).name} vs {report.reference.directory}: {k.n_tokens} tokens, "
             f"{report.n_windows} x {report.n_ctx}")
    table = Table("statistic", "value", title=title, title_justify="left")
    table.add_row("PPL(ref)", _pm_significant(k.ppl_reference))
    table.add_row("PPL(Q)", _pm_significant(k.ppl_candidate))
    table.add_row("PPL(Q)/PPL(ref)", _pm(k.ppl_ratio))
    table.add_row("Cor(ln PPL(Q), ln PPL(ref))", _percent_or_dash(k.nll_correlation))
    table.add_row("mean KLD", _pm_significant(k.kld_mean))
    for level in _KLD_LEVELS:
        label = f"{level}% KLD" if level[0].isdigit() else f"{level} KLD"
        table.add_row(label, f"{k.kld_percentiles[level]:.4g}")
    table.add_row("same top-1", _pm(k.same_top1, 2, 100, " %"))
    c = report.confident_top1
    table.add_row(f"same top-1 (ref gap > {c.gap})", f"{_percent_or_dash(c.agreement)} of {c.n_confident}")
    table.add_row("mean Δp", _pm(k.delta_p_mean, 3, 100, " %"))
    table.add_row("RMS Δp", _pm(k.delta_p_rms, 3, 100, " %"))
    table.add_row("tokenizer", "agrees" if report.tokenizer.agree else "[red]DIFFERS[/red]")
    table.add_row("reference pass", _reference_cell(report.reference))
    table.add_row("candidate pass", f"{report.candidate_seconds:.1f} s")
    for media in report.media:
        table.add_row(f"{media.kind} {Path(media.source).name}", _media_cell(media))
    return table


def _reference_cell(reference: ReferencePass) -> str:
    if reference.cached:
        return f"cache ({reference.seconds:.1f} s)"
    return (f"computed, {reference.mode}, peak {human_bytes(reference.peak_rss_bytes or 0)} "
            f"({reference.seconds:.1f} s)")


def _media_cell(media: MediaParity) -> str:
    cell = f"embedding cosine {media.embedding_cosine:.6f}"
    if media.max_abs_delta is not None:
        cell += f", max |Δ| {media.max_abs_delta:.3g}"
    if media.prompt_kld is not None and media.prompt_top1 is not None:
        cell += f"; prompt after image: KLD {media.prompt_kld:.3g}, top-1 {100 * media.prompt_top1:.1f} %"
    if media.note:
        cell += f" ({media.note})"
    return cell


def gate_table(result: GateResult) -> Table:
    verdict = "[green]passed[/green]" if result.passed else f"[red]{len(result.failures)} regression(s)[/red]"
    table = Table("check", "measured", "baseline", "limit", "result",
                  title=f"{Path(result.model).name}: {verdict}", title_justify="left")
    for o in result.outcomes:
        measured = "not measured" if o.measured is None else f"{o.measured:.6g}"
        relation = "<=" if o.direction == "max" else ">="
        status = "[green]ok[/green]" if o.passed else "[red]REGRESSION[/red]"
        table.add_row(o.name, measured, f"{o.baseline:.6g}", f"{relation} {o.bound:.6g}", status)
    return table


def sweep_table(result: SweepResult) -> Table:
    table = Table("scheme", "size", "bits/weight", "PPL ratio", "mean KLD", "99% KLD", "same top-1",
                  title=f"{Path(result.checkpoint).name}: schemes against the reference", title_justify="left")
    for r in result.rows:
        table.add_row(r.scheme, f"{r.file_bytes / 2**20:.2f} MiB", f"{r.bits_per_weight:.2f}", _pm(r.ppl_ratio),
                      _pm_significant(r.kld_mean), f"{r.kld_p99:.4g}", _pm(r.same_top1, 2, 100, " %"))
    return table


def _percent_or_dash(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.2f} %"
