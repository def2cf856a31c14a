"""The conversion commands: ``convert`` (checkpoint -> text and projector GGUF) and ``inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gemma3n_gguf.cli.console import console, err_console, byte_progress, human_bytes, key_value_table, print_json
from gemma3n_gguf.cli.options import CheckpointArg, ExactMmTokensOpt, GGUFArg, JsonOpt

MmprojTypeOpt = Annotated[str, typer.Option(
    "--mmproj-type",
    help="Projector type: f32, f16, bf16 or q8_0. Tensors llama.cpp cannot run in it are written in one it "
         "can (depthwise kernels F16 or BF16, convs F32 or F16, input projections F16); the warnings say which.")]
def convert(
    checkpoint: CheckpointArg,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .gguf path (the projector's with --mmproj-only).")] = None,
    outtype: Annotated[str, typer.Option(help="f32, f16, bf16 or q8_0.")] = "f16",
    force: Annotated[bool, typer.Option(help="Write even if llama.cpp would run this config wrongly.")] = False,
    mmproj: Annotated[bool, typer.Option("--mmproj", help="Also write the projector GGUF (vision + audio) beside the text GGUF, as mmproj-<model>-<TYPE>.gguf.")] = False,
    mmproj_only: Annotated[bool, typer.Option("--mmproj-only", help="Write only the projector GGUF.")] = False,
    mmproj_type: MmprojTypeOpt = "f16",
    exact_mm_tokens: ExactMmTokensOpt = None,
    threads: Annotated[int | None, typer.Option(help="Encoding threads (default: all cores); the bytes do not depend on it.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show the plan of each file it would write (text GGUF, projector): type per tensor group and why, sizes; write nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert a Gemma 3n checkpoint into a text GGUF file and, with --mmproj, its projector GGUF."""
    from gemma3n_gguf.convert import convert as run_convert
    from gemma3n_gguf.convert.projector.convert import convert_mmproj, convert_text_and_mmproj
    from gemma3n_gguf.core.errors import ConfigError

    if mmproj_only and exact_mm_tokens is not None:
        raise ConfigError("--exact-mm-tokens changes the text GGUF, which --mmproj-only does not write; "
                          "pass it to the text conversion")
    exact = mmproj if exact_mm_tokens is None else exact_mm_tokens
    if dry_run:
        _print_conversion_plans(checkpoint, outtype=None if mmproj_only else outtype, force=force, exact=exact,
                                mmproj_type=mmproj_type if mmproj or mmproj_only else None, json_out=json_out)
        return
    with byte_progress("converting", enabled=not json_out) as progress:
        if mmproj_only:
            text, projector = None, convert_mmproj(checkpoint, output, mmproj_type=mmproj_type, threads=threads,
                                                   on_progress=progress)
        elif mmproj:
            text, projector = convert_text_and_mmproj(checkpoint, output, outtype=outtype, mmproj_type=mmproj_type,
                                                      force=force, exact_mm_tokens=exact, threads=threads,
                                                      on_progress=progress)
        else:
            text, projector = run_convert(checkpoint, output, outtype=outtype, force=force,
                                          exact_mm_tokens=exact, threads=threads, on_progress=progress), None
    summary = (_text_summary(text, exact) if text else {}) | ({"mmproj": _mmproj_summary(projector)} if projector else {})
    for warning in summary.get("warnings", []) + summary.get("mmproj", {}).get("warnings", []):
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if json_out:
        print_json(summary)
        return
    if text:
        _print_text_result(text)
    if projector:
        _print_mmproj_result(projector)


def _print_conversion_plans(checkpoint: Path, *, outtype: str | None, force: bool, exact: bool,
                            mmproj_type: str | None, json_out: bool) -> None:
    """The plan of the text GGUF (unless ``outtype`` is None) and of the projector (unless
    ``mmproj_type`` is None), as quantize --dry-run prints its own. JSON: the one plan, or
    ``{"text": ..., "mmproj": ...}`` for both."""
    from gemma3n_gguf.cli.plan_tables import plan_table
    from gemma3n_gguf.convert.projector.convert import plan_mmproj
    from gemma3n_gguf.convert.text import plan_conversion

    plans = {}
    if outtype is not None:
        plans["text"] = plan_conversion(checkpoint, outtype=outtype, force=force, exact_mm_tokens=exact)[1]
    if mmproj_type is not None:
        plans["mmproj"] = plan_mmproj(checkpoint, mmproj_type).file
    for plan in plans.values():
        for warning in plan.warnings:
            err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if json_out:
        dicts = {kind: plan.to_dict() for kind, plan in plans.items()}
        print_json(dicts if len(dicts) > 1 else next(iter(dicts.values())))
        return
    for plan in plans.values():
        console.print(plan_table(plan))


def _text_summary(result, exact_mm_tokens: bool) -> dict:
    return {"output": str(result.path), "tensors": result.n_tensors, "bytes": result.nbytes,
            "synthesised": result.plan.synthesised, "exact_mm_tokens": exact_mm_tokens, "warnings": result.warnings}


def _mmproj_summary(result) -> dict:
    return {"output": str(result.path), "tensors": result.n_tensors, "bytes": result.nbytes,
            "modalities": result.modalities, "blocks_per_stage": result.plan.blocks_per_stage,
            "warnings": result.warnings}


def _print_text_result(result) -> None:
    console.print(f"[green]wrote[/green] {result.path} ({result.n_tensors} tensors, {human_bytes(result.nbytes)}, "
                  f"{result.seconds:.1f} s on {result.threads} threads)")
    if result.plan.synthesised:
        console.print(f"  synthesised {len(result.plan.synthesised)} K/V tensors of KV-shared layers "
                      "(absent from transformers-5 checkpoints; never read by llama.cpp)")


def _print_mmproj_result(result) -> None:
    console.print(f"[green]wrote[/green] {result.path} ({result.n_tensors} tensors, {human_bytes(result.nbytes)}, "
                  f"{' + '.join(result.modalities)}; MobileNet-V5 blocks per stage {result.plan.blocks_per_stage})")
    if result.plan.has_audio:
        console.print("  audio: stock llama.cpp skips it; the patched runtime (gemma3n-gguf runtime build) "
                      "runs it (docs/audio.md)")


def inspect(path: GGUFArg, json_out: JsonOpt = False) -> None:
    """Summarise a GGUF file: architecture, metadata, tensor types, sizes by group."""
    from gemma3n_gguf.inspection import summarize

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
    if summary.runtimes:
        console.print(escape(runtime_line(summary.runtimes)))


def runtime_line(runtimes: dict[str, str]) -> str:
    """``llama.cpp: runs``, or ``llama.cpp: no (why; patched runtime: yes|no)``."""
    from gemma3n_gguf.model.runtimes import LLAMA_CPP, LLAMA_CPP_PATCHED

    stock, patched = runtimes[LLAMA_CPP], runtimes[LLAMA_CPP_PATCHED]
    if stock == "yes":
        return "llama.cpp: runs"
    return f"llama.cpp: no ({stock.removeprefix('no: ')}; patched runtime: {patched})"


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."
