"""The ``gemma3n-gguf`` command line: a thin layer over the library's functions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .console import byte_progress, console, err_console, human_bytes, key_value_table, print_json
from .errors import Gemma3nGGUFError

app = typer.Typer(
    name="gemma3n-gguf",
    help="Convert, quantize and validate Gemma 3n checkpoints as GGUF files for llama.cpp, Ollama and LM Studio.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)

CheckpointArg = Annotated[Path, typer.Argument(help="Hugging Face checkpoint directory (config.json, safetensors, tokenizer.model).")]
GGUFArg = Annotated[Path, typer.Argument(help="A GGUF file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


@app.command("make-checkpoint")
def make_checkpoint_cmd(
    out: Annotated[Path, typer.Argument(help="Directory to create.")],
    preset: Annotated[str, typer.Option(help="tiny-text, tiny-mm, e2b-shape or e4b-shape.")] = "tiny-text",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    saving: Annotated[str, typer.Option(help="transformers5 (no K/V for KV-shared layers) or google.")] = "transformers5",
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty directory.")] = False,
) -> None:
    """Write a random-weight Gemma 3n checkpoint in the exact layout of Google's releases."""
    from .fixtures import make_checkpoint

    with console.status(f"building {preset} checkpoint"):
        path = make_checkpoint(out, preset, seed=seed, saving=saving, overwrite=overwrite)
    console.print(f"[green]wrote[/green] {path}")


@app.command()
def convert(
    checkpoint: CheckpointArg,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .gguf path.")] = None,
    outtype: Annotated[str, typer.Option(help="f32, f16, bf16 or q8_0.")] = "f16",
    force: Annotated[bool, typer.Option(help="Write even if llama.cpp would run this config wrongly.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert a Gemma 3n checkpoint's text model into a GGUF file."""
    from .convert import convert as run_convert

    with byte_progress("converting", enabled=not json_out) as progress:
        result = run_convert(checkpoint, output, outtype=outtype, force=force, on_progress=progress)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    summary = {
        "output": str(result.path),
        "tensors": result.n_tensors,
        "bytes": result.plan.nbytes,
        "synthesised": result.plan.synthesised,
        "warnings": result.warnings,
    }
    if json_out:
        print_json(summary)
        return
    console.print(f"[green]wrote[/green] {result.path} ({result.n_tensors} tensors, {human_bytes(result.plan.nbytes)})")
    if result.plan.synthesised:
        console.print(f"  synthesised {len(result.plan.synthesised)} K/V tensors of KV-shared layers "
                      "(absent from transformers-5 checkpoints; never read by llama.cpp)")


@app.command()
def inspect(path: GGUFArg, json_out: JsonOpt = False) -> None:
    """Summarise a GGUF file: architecture, metadata, tensor types, sizes by group."""
    from .inspect import summarize

    summary = summarize(path)
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(key_value_table(f"{path.name} ({summary.architecture}, {human_bytes(summary.file_bytes)})",
                                  {k: _short(v) for k, v in summary.metadata.items()}))
    table = Table("group", "tensors", "parameters", "size", "bits/weight", title="tensors by group", title_justify="left")
    for name, g in sorted(summary.groups.items(), key=lambda kv: -kv[1].bytes):
        table.add_row(name, str(g.tensors), f"{g.elements:,}", human_bytes(g.bytes), f"{g.bits_per_weight:.2f}")
    t = summary.total
    table.add_row("[bold]total", str(t.tensors), f"{t.elements:,}", human_bytes(t.bytes), f"{t.bits_per_weight:.2f}")
    console.print(table)
    console.print("types: " + ", ".join(f"{k} x{v}" for k, v in sorted(summary.tensor_types.items())))
    if summary.projector:
        console.print(key_value_table("projector", summary.projector))


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


@app.command()
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Working directory for the demo's files.")] = Path("gemma3n-demo"),
) -> None:
    """Build a tiny Gemma 3n, convert it, and check llama.cpp against transformers."""
    from .demo import run_demo

    run_demo(out, console)


def main() -> None:
    try:
        app()
    except Gemma3nGGUFError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
