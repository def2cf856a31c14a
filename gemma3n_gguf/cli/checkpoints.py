"""Commands that build things from nothing: ``make-checkpoint`` (a random Gemma 3n) and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gemma3n_gguf.cli.console import console
from gemma3n_gguf.fixtures.presets import PRESETS


def make_checkpoint_cmd(
    out: Annotated[Path, typer.Argument(help="Directory to create.")],
    preset: Annotated[str, typer.Option(help="One of: " + ", ".join(PRESETS) + ".")] = "tiny-text",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    saving: Annotated[str, typer.Option(help="transformers5 (no K/V for KV-shared layers) or google.")] = "transformers5",
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty directory.")] = False,
) -> None:
    """Write a random-weight Gemma 3n checkpoint in the exact layout of Google's releases."""
    from gemma3n_gguf.fixtures import make_checkpoint

    with console.status(f"building {preset} checkpoint"):
        path = make_checkpoint(out, preset, seed=seed, saving=saving, overwrite=overwrite)
    console.print(f"[green]wrote[/green] {path}")


def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Working directory for the demo's files.")] = Path("gemma3n-demo"),
) -> None:
    """The whole toolkit on a tiny multimodal Gemma 3n: convert, quantize, validate, gate, Modelfile, package."""
    from gemma3n_gguf.demo import run_demo

    rows = run_demo(out, console)
    if any(r.failure for r in rows):
        raise typer.Exit(1)
