"""The ``slice`` command: MatFormer Mix-n-Match, from an E4B checkpoint to a GGUF or a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gemma3n_gguf.cli.console import byte_progress, console, err_console, human_bytes, print_json
from gemma3n_gguf.cli.options import JsonOpt, PleTypeOpt, PureOpt, RecipeNameOpt, RecipeOpt, TensorTypeOpt, TypeOpt


def slice_cmd(
    checkpoint: Annotated[Path | None, typer.Argument(help="E4B (or any Gemma 3n) checkpoint directory.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="OUT.gguf: a GGUF in one pass; any other path: an HF checkpoint directory.")] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="An official configuration (slice --list), e.g. e2b, e2.54b-layer.")] = None,
    ffn_widths: Annotated[str | None, typer.Option("--ffn-widths", help="Widths per kept layer: 8192,16384,..., 8192*20,16384*15, Google's [2_048 * 4, ...] or a row of Google's CSV.")] = None,
    skip_layers: Annotated[str | None, typer.Option("--skip-layers", help="Original layers to drop, e.g. 20-24 or 20,21,22.")] = None,
    budget: Annotated[str | None, typer.Option("--budget", help="Pick the best official configuration (by MMLU) whose output fits SIZE, e.g. 3GB.")] = None,
    budget_of: Annotated[str, typer.Option("--budget-of", help="What --budget bounds: file, or resident (all but the PLE table).")] = "file",
    list_configs: Annotated[bool, typer.Option("--list", help="List the 16 official configurations and exit.")] = False,
    scheme: Annotated[str | None, typer.Option("--scheme", "-s", help="Quantize in the same pass: Q4_K_M, Q8_0, Q6_K, ... (GGUF output).")] = None,
    outtype: Annotated[str, typer.Option(help="Without --scheme: f32, f16, bf16 or q8_0, as convert writes.")] = "f16",
    imatrix: Annotated[str | None, typer.Option("--imatrix", help="Importance matrix (llama.cpp GGUF or .dat) for --scheme.")] = None,
    tensor_type: TensorTypeOpt = None,
    token_embedding_type: TypeOpt = None,
    ple_type: PleTypeOpt = None,
    output_tensor_type: TypeOpt = None,
    pure: PureOpt = False,
    recipe: RecipeOpt = None,
    recipe_name: RecipeNameOpt = None,
    force: Annotated[bool, typer.Option(help="Slice a checkpoint whose own config llama.cpp would run wrongly.")] = False,
    threads: Annotated[int | None, typer.Option(help="Kernel threads (default: all cores).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show the slice, its sizes and runtimes; write nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Slice a Gemma 3n checkpoint to a MatFormer configuration (widths per layer, skipped layers)."""
    from gemma3n_gguf.core.checkpoint import Checkpoint
    from gemma3n_gguf.core.units import parse_bytes
    from gemma3n_gguf.quantize.recipes import load_recipe, resolve_options
    from gemma3n_gguf.slice.api import WriteOptions, is_gguf_output, open_slice, plan_slice, write_slice
    from gemma3n_gguf.slice.budget import pick_for_budget

    if list_configs:
        _print_configs(json_out)
        return
    if checkpoint is None or (output is None and not dry_run):
        raise typer.BadParameter("give CHECKPOINT and -o OUT (or --list)")
    if recipe_name and not recipe:
        raise typer.BadParameter("--recipe-name needs --recipe FILE")
    gguf = output is None or is_gguf_output(output)
    options = WriteOptions(outtype=outtype, imatrix=imatrix)
    if scheme or recipe or tensor_type or token_embedding_type or ple_type or output_tensor_type or pure:
        chosen = load_recipe(recipe, recipe_name) if recipe else None
        scheme_, plan_options = resolve_options(chosen, scheme=scheme, tensor_type=tensor_type or (),
                                                token_embedding_type=token_embedding_type, ple_type=ple_type,
                                                output_tensor_type=output_tensor_type, pure=pure)
        options = WriteOptions(scheme=scheme_.name, outtype=outtype, plan_options=plan_options, imatrix=imatrix)
    if budget is not None:
        if config or ffn_widths:
            raise typer.BadParameter("--budget picks the configuration: drop --config/--ffn-widths")
        config = pick_for_budget(Checkpoint(checkpoint), parse_bytes(budget), budget_of, gguf, options).slug
    sliced = open_slice(checkpoint, config=config, ffn_widths=ffn_widths, skip_layers=skip_layers, force=force)
    if dry_run:
        _print_result(plan_slice(sliced, gguf, options), json_out)
        return
    with byte_progress("slicing", enabled=not json_out and gguf) as progress:
        result = write_slice(sliced, output, options, threads=threads, on_progress=progress)
    _print_result(result, json_out)


def _print_configs(json_out: bool) -> None:
    from gemma3n_gguf.slice.configs import OFFICIAL_CONFIGS, E4B_FULL_WIDTH
    from gemma3n_gguf.slice.spec import compact_widths

    rows = [{"config": c.slug, "name": c.name, "layers": c.num_layers, "effective_params_b": c.effective_params_b,
             "mmlu": c.mmlu, "ffn_widths": compact_widths(c.widths(E4B_FULL_WIDTH)),
             "skipped": list(c.skipped)} for c in OFFICIAL_CONFIGS]
    if json_out:
        print_json(rows)
        return
    table = Table("config", "layers", "eff. params", "MMLU", "FFN widths (E4B)", "skipped",
                  title="Google's official MatFormer configurations of E4B", title_justify="left")
    for r in rows:
        skipped = f"{r['skipped'][0]}-{r['skipped'][-1]}" if r["skipped"] else "-"
        table.add_row(r["config"], str(r["layers"]), f"{r['effective_params_b']:.2f} B", f"{r['mmlu']:.1f}",
                      r["ffn_widths"], skipped)
    console.print(table)
    console.print("On a checkpoint other than E4B, 16384 means its FFN width and 8192 half of it.", highlight=False)


def _print_result(result, json_out: bool) -> None:
    from gemma3n_gguf.model.runtimes import RUNTIME_LABELS, UNTESTED_NOTE
    from gemma3n_gguf.slice.spec import compact_widths

    s = result.slice
    data = {"config": s.name or "custom", "layers": s.num_layers, "skipped": list(s.skipped),
            "ffn_widths": compact_widths(s.widths), "effective_parameters": result.effective_parameters,
            "bytes": result.file_bytes, "resident_bytes": result.resident_bytes,
            "runtimes": {v.runtime: v.text for v in result.verdicts},
            "output": str(result.path) if result.path else None, "seconds": round(result.seconds, 3)}
    for note in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(note)}", highlight=False)
    if json_out:
        print_json(data)
        return
    where = f"[green]wrote[/green] {result.path}" if result.path else "[bold]would write[/bold]"
    console.print(f"{where}: {data['config']}, {s.num_layers} layers (skipped: {data['skipped'] or 'none'}), "
                  f"FFN {data['ffn_widths']}", highlight=False)
    console.print(f"effective parameters {result.effective_parameters:,}; {human_bytes(result.file_bytes)} of "
                  f"tensors, {human_bytes(result.resident_bytes)} without the PLE table", highlight=False)
    for v in result.verdicts:
        mark = "[green]runs[/green]" if v.runs else "[red]does not run[/red]"
        console.print(f"  {RUNTIME_LABELS[v.runtime]}: {mark}" + ("" if v.runs else f": {escape('; '.join(v.reasons))}"),
                      highlight=False)
    console.print(f"  {UNTESTED_NOTE}", highlight=False)
