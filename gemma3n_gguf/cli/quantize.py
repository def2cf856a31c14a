"""The quantization commands: ``quantize`` (one pass or requantize) and ``imatrix``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gemma3n_gguf.cli.console import byte_progress, console, err_console, human_bytes, phase_progress, print_json
from gemma3n_gguf.cli.options import (
    CheckpointArg, JsonOpt, PleTypeOpt, PureOpt, QuantizeExactMmTokensOpt, RecipeNameOpt, RecipeOpt, ReferenceModeOpt,
    TensorTypeOpt, TypeOpt,
)
from gemma3n_gguf.cli.package import TargetOpt, print_target_choices


def quantize_cmd(
    source: Annotated[Path, typer.Argument(help="Checkpoint directory (one pass) or an F32/F16/BF16 GGUF.")],
    scheme: Annotated[str | None, typer.Option("--scheme", "-s", help="Q4_K_M (default), Q8_0, Q6_K, Q5_K_M, Q3_K_M, IQ4_XS, ...")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .gguf path.")] = None,
    imatrix: Annotated[str | None, typer.Option("--imatrix", help="Importance matrix (llama.cpp GGUF or .dat).")] = None,
    tensor_type: TensorTypeOpt = None,
    token_embedding_type: TypeOpt = None,
    ple_type: PleTypeOpt = None,
    output_tensor_type: TypeOpt = None,
    pure: PureOpt = False,
    recipe: RecipeOpt = None,
    recipe_name: RecipeNameOpt = None,
    allow_requantize: Annotated[bool, typer.Option(help="Accept an already quantized GGUF as input.")] = False,
    intermediate: Annotated[str, typer.Option(help="From a checkpoint: write what convert --outtype f32|f16|bf16 + llama-quantize would (kept tensors stay in that type).")] = "f32",
    force: Annotated[bool, typer.Option(help="As for convert: accept a config llama.cpp would run wrongly.")] = False,
    exact_mm_tokens: QuantizeExactMmTokensOpt = False,
    threads: Annotated[int | None, typer.Option(help="Kernel threads (default: all cores).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show the plan (types, sizes, PLE share); write nothing.")] = False,
    target: TargetOpt = "llama.cpp",
    json_out: JsonOpt = False,
) -> None:
    """Quantize a checkpoint in one pass (or requantize a GGUF), byte-identical to llama-quantize."""
    from gemma3n_gguf.package.profiles import get_profile, target_quantization
    from gemma3n_gguf.quantize.onepass import plan_quantization, quantize
    from gemma3n_gguf.quantize.recipes import load_recipe, resolve_options

    if recipe_name and not recipe:
        raise typer.BadParameter("--recipe-name needs --recipe FILE")
    chosen = load_recipe(recipe, recipe_name) if recipe else None
    scheme_, options = resolve_options(chosen, scheme=scheme, tensor_type=tensor_type or (),
                                       token_embedding_type=token_embedding_type, ple_type=ple_type,
                                       output_tensor_type=output_tensor_type, pure=pure)
    opening = dict(intermediate=intermediate, force=force, exact_mm_tokens=exact_mm_tokens)
    targeted = target_quantization(get_profile(target), source, scheme=scheme_, options=options, imatrix=imatrix,
                                   allow_requantize=allow_requantize, **opening)
    print_target_choices(target, targeted.choices)
    common = dict(scheme=scheme_, options=targeted.options, imatrix=imatrix, allow_requantize=allow_requantize,
                  **opening)
    if dry_run:
        _print_quantize_outcome(plan_quantization(targeted.source, **common), None, json_out)
        return
    with byte_progress(f"quantizing {scheme_.name}", enabled=not json_out) as progress:
        result = quantize(targeted.source, output, threads=threads, on_progress=progress, **common)
    _print_quantize_outcome(result.plan, result, json_out)


def _print_quantize_outcome(plan, result, json_out: bool) -> None:
    """Warnings, then the plan (dry run) or what was written, as tables or JSON."""

    from gemma3n_gguf.cli.plan_tables import imatrix_note, plan_table

    for note in [f"--tensor-type {p!r} matches no tensor" for p in plan.unmatched_patterns] + plan.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)
    if json_out:
        print_json(plan.to_dict() | ({"output": str(result.path), "seconds": result.seconds} if result else {}))
        return
    if result is None:
        console.print(plan_table(plan))
    else:
        console.print(f"[green]wrote[/green] {result.path} ({human_bytes(plan.file_bytes)}, {plan.scheme.name}, "
                      f"{result.seconds:.1f} s on {result.threads} threads)")
    if imatrix_note(plan):
        console.print(imatrix_note(plan), highlight=False)


def imatrix_cmd(
    checkpoint: CheckpointArg,
    text: Annotated[Path, typer.Option("--text", help="Calibration text file (UTF-8).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output imatrix path (llama.cpp's GGUF format).")] = Path("imatrix.gguf"),
    ctx: Annotated[int, typer.Option("--ctx", help="Tokens per chunk (llama-imatrix -c).")] = 512,
    chunks: Annotated[int | None, typer.Option("--chunks", help="Use at most N chunks (default: all).")] = None,
    reference_mode: ReferenceModeOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Compute an importance matrix with the transformers reference model, for quantize --imatrix."""
    from gemma3n_gguf.quantize.calibrate import compute_imatrix, read_calibration_text
    from gemma3n_gguf.quantize.imatrix import write_imatrix_gguf

    with phase_progress(enabled=not json_out) as progress:
        on_window = (lambda done, total: progress("imatrix chunks", done, total)) if progress else None
        result = compute_imatrix(checkpoint, read_calibration_text(text), dataset=str(text), n_ctx=ctx,
                                 chunks=chunks, on_progress=on_window, reference_mode=reference_mode)
    write_imatrix_gguf(output, result.imatrix)
    summary = {"output": str(output), "dataset": str(text), "entries": len(result.imatrix.entries), "chunks": result.n_windows,
               "chunk_size": ctx, "tokens": result.n_tokens, "no_entries_kv_shared": result.shared_kv_skipped,
               "reference": {"mode": result.reference_mode, "peak_rss_bytes": result.peak_rss_bytes}}
    if json_out:
        print_json(summary)
        return
    console.print(f"[green]wrote[/green] {output} ({summary['entries']} entries, {result.n_windows} chunks of {ctx} tokens; "
                  f"reference {result.reference_mode}, peak {human_bytes(result.peak_rss_bytes)})")
    if result.shared_kv_skipped:
        console.print(f"no entries for the K/V of the KV-shared layers ({', '.join(result.shared_kv_skipped[:2])}, ...): "
                      "llama.cpp never computes them, so llama-imatrix records none and llama-quantize "
                      "quantizes them without imatrix data", highlight=False)
