"""The demo: build a tiny Gemma 3n, convert and quantize it, and check llama.cpp against transformers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from gemma3n_gguf.core.units import human_bytes
from gemma3n_gguf.convert import convert
from gemma3n_gguf.fixtures import make_checkpoint
from gemma3n_gguf.quantize import quantize
from gemma3n_gguf.validate.metrics.bounds import PARITY_BOUNDS
from gemma3n_gguf.validate.metrics.parity import ParityStats, parity_stats
from gemma3n_gguf.reference.runners import LlamaCppRunner, TransformersRunner

DEMO_TYPES = ("f32", "f16", "q8_0")
DEMO_TOKENS = 384


@dataclass
class DemoRow:
    outtype: str
    path: Path
    stats: ParityStats
    failures: list[str] | None  # None: no parity bound for this type (a k-quant)


def run_demo(out: Path, console: Console) -> list[DemoRow]:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "tiny-text"
    started = time.perf_counter()
    with console.status("building the tiny-text checkpoint (random weights, Google's layout)"):
        if not (checkpoint / "config.json").is_file():
            make_checkpoint(checkpoint, "tiny-text", seed=0, overwrite=True)
    console.print(f"[green]checkpoint[/green] {checkpoint}")

    ids = np.concatenate([[2], np.random.default_rng(0).integers(10, 1024, DEMO_TOKENS - 1)])
    with console.status("running transformers (the reference)"):
        reference = next(TransformersRunner(checkpoint).iter_window_logits([ids]))
    rows = []
    for outtype in DEMO_TYPES:
        with console.status(f"converting to {outtype} and running llama.cpp"):
            path = convert(checkpoint, out / f"tiny-text-{outtype.upper()}.gguf", outtype=outtype).path
            with LlamaCppRunner(path, n_ctx=512) as runner:
                stats = parity_stats(reference, next(runner.iter_window_logits([ids])))
        rows.append(DemoRow(outtype, path, stats, PARITY_BOUNDS[outtype].violations(stats)))
    with console.status("quantizing to Q4_K_M in one pass from the safetensors and running llama.cpp"):
        path = quantize(checkpoint, out / "tiny-text-Q4_K_M.gguf", scheme="Q4_K_M").path
        with LlamaCppRunner(path, n_ctx=512) as runner:
            stats = parity_stats(reference, next(runner.iter_window_logits([ids])))
    rows.append(DemoRow("Q4_K_M", path, stats, None))
    console.print(_table(rows))
    verdict = ("[bold green]all within bounds[/bold green]" if not any(r.failures for r in rows)
               else "[bold red]out of bounds[/bold red]")
    console.print(f"{verdict} ({DEMO_TOKENS} tokens, {time.perf_counter() - started:.0f} s). "
                  f"Next: gemma3n-gguf inspect {rows[-1].path}")
    return rows


def _table(rows: list[DemoRow]) -> Table:
    table = Table("type", "size", "max |dlogit|/std", "mean KLD", "top-1 (gap>0.1)", "verdict",
                  title="llama.cpp vs transformers on the same tokens", title_justify="left")
    for r in rows:
        s = r.stats
        if r.failures is None:
            verdict = "[dim]no bound (sweep)[/dim]"
        else:
            verdict = "[green]pass[/green]" if not r.failures else "[red]" + "; ".join(r.failures) + "[/red]"
        table.add_row(r.outtype, human_bytes(r.path.stat().st_size), f"{s.max_abs_dlogit_rel:.4f}",
                      f"{s.mean_kld:.2e}", f"{s.confident_top1_agreement:.3f}", verdict)
    return table
