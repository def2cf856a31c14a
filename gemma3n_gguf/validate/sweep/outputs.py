"""A sweep's table as Markdown and JSON, and its plot of file size against mean KLD (PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from gemma3n_gguf.core.atomic import atomic_path, write_text_atomically
from gemma3n_gguf.validate.report import ValidationReport
from gemma3n_gguf.validate.sweep.result import SweepResult, SweepRow

MIB = 1024 * 1024


def markdown_table(rows: Sequence[SweepRow], first: ValidationReport, name: str) -> str:
    lines = [
        f"### {name}: quantization schemes against the reference",
        "",
        "| scheme | size | bits/weight | PPL ratio | mean KLD | 99% KLD | same top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scheme} | {r.file_bytes / MIB:.2f} MiB | {r.bits_per_weight:.2f} "
            f"| {r.ppl_ratio.value:.4f} ± {r.ppl_ratio.uncertainty:.4f} "
            f"| {r.kld_mean.value:.5f} ± {r.kld_mean.uncertainty:.5f} | {r.kld_p99:.4f} "
            f"| {100 * r.same_top1.value:.2f} ± {100 * r.same_top1.uncertainty:.2f} % |"
        )
    lines += [
        "",
        f"{first.kld.n_tokens} scored tokens in {first.n_windows} windows of {first.n_ctx} "
        f"({first.text_name}); reference: transformers fp32 on `{first.reference.directory}`; "
        "candidate: llama.cpp (llama-cpp-python), F16 KV cache, weight repacking "
        f"{'on' if first.weight_repack else 'off (--no-repack)'}, llama-perplexity's KLD protocol.",
    ]
    return "\n".join(lines) + "\n"


def write_plot(path: Path, rows: Sequence[SweepRow], name: str) -> None:
    """File size (MiB) against mean KLD (log scale, ± its standard error), one labelled point per scheme."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's import
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        sizes = [r.file_bytes / MIB for r in rows]
        klds = [r.kld_mean.value for r in rows]
        errors = [r.kld_mean.uncertainty for r in rows]
        axes.errorbar(sizes, klds, yerr=errors, fmt="o-", capsize=3)
        for size, kld, row in zip(sizes, klds, rows):
            axes.annotate(row.scheme, (size, kld), textcoords="offset points", xytext=(5, 5), fontsize=9)
        if all(k > 0 for k in klds):
            axes.set_yscale("log")
        axes.set_xlabel("file size (MiB)")
        axes.set_ylabel("mean KLD vs reference (nats)")
        axes.set_title(f"{name}: size against divergence from the reference")
        axes.grid(True, which="both", alpha=0.3)
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)


def output_paths(directory: Path) -> dict[str, str]:
    return {key: str(directory / f"sweep.{ext}") for key, ext in
            (("markdown", "md"), ("json", "json"), ("plot", "png"))}


def write_outputs(result: SweepResult) -> None:
    """Write ``result.outputs``: the Markdown table, the JSON document and the plot."""
    name = Path(result.checkpoint).name
    write_text_atomically(result.outputs["markdown"], markdown_table(result.rows, result.reports[0], name))
    write_text_atomically(result.outputs["json"], json.dumps(result.to_dict(), indent=2) + "\n")
    write_plot(Path(result.outputs["plot"]), result.rows, name)
