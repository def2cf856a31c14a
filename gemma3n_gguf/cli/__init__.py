"""The ``gemma3n-gguf`` command line: a thin layer over the library's functions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from gemma3n_gguf.cli.console import (
    byte_progress,
    console,
    err_console,
    human_bytes,
    key_value_table,
    phase_progress,
    print_json,
)
from gemma3n_gguf.fixtures.presets import PRESETS
from gemma3n_gguf.core.errors import Gemma3nGGUFError

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


MmprojTypeOpt = Annotated[str, typer.Option(
    "--mmproj-type",
    help="Projector type: f32, f16, bf16 or q8_0. Tensors llama.cpp cannot run in it are written in one it "
         "can (depthwise kernels F16 or BF16, convs F32 or F16, input projections F16); the warnings say which.")]
_EXACT_MM_HELP = (
    "Make llama.cpp embed the multimodal hard tokens (<end_of_image>, which mtmd puts after every image, "
    "and the rest of the vision/audio ids) as transformers does: bake them into token_embd, fill the "
    "padded PLE rows with row 0 and write an untied output.weight. Costs vocab x hidden more "
    "(E2B/E4B: +537 M parameters, +1.07 GB at f16, +0.57 GB at q8_0). Without it, logits after an "
    "image drift (measured on tiny-mm: mean KLD 1.3, top-1 95%).")
ExactMmTokensOpt = Annotated[bool | None, typer.Option(
    "--exact-mm-tokens/--no-exact-mm-tokens", help=_EXACT_MM_HELP + " Default: on with --mmproj, else off.")]
QuantizeExactMmTokensOpt = Annotated[bool, typer.Option(
    "--exact-mm-tokens/--no-exact-mm-tokens", help=_EXACT_MM_HELP + " Default: off.")]


@app.command()
def convert(
    checkpoint: CheckpointArg,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .gguf path (the projector's with --mmproj-only).")] = None,
    outtype: Annotated[str, typer.Option(help="f32, f16, bf16 or q8_0.")] = "f16",
    force: Annotated[bool, typer.Option(help="Write even if llama.cpp would run this config wrongly.")] = False,
    mmproj: Annotated[bool, typer.Option("--mmproj", help="Also write the projector GGUF (vision + audio) beside the text GGUF, as mmproj-<model>-<TYPE>.gguf.")] = False,
    mmproj_only: Annotated[bool, typer.Option("--mmproj-only", help="Write only the projector GGUF.")] = False,
    mmproj_type: MmprojTypeOpt = "f16",
    exact_mm_tokens: ExactMmTokensOpt = None,
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
    with byte_progress("converting", enabled=not json_out) as progress:
        if mmproj_only:
            text, projector = None, convert_mmproj(checkpoint, output, mmproj_type=mmproj_type, on_progress=progress)
        elif mmproj:
            text, projector = convert_text_and_mmproj(checkpoint, output, outtype=outtype, mmproj_type=mmproj_type,
                                                      force=force, exact_mm_tokens=exact, on_progress=progress)
        else:
            text, projector = run_convert(checkpoint, output, outtype=outtype, force=force,
                                          exact_mm_tokens=exact, on_progress=progress), None
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


def _text_summary(result, exact_mm_tokens: bool) -> dict:
    return {"output": str(result.path), "tensors": result.n_tensors, "bytes": result.plan.nbytes,
            "synthesised": result.plan.synthesised, "exact_mm_tokens": exact_mm_tokens, "warnings": result.warnings}


def _mmproj_summary(result) -> dict:
    return {"output": str(result.path), "tensors": result.n_tensors, "bytes": result.plan.nbytes,
            "modalities": result.modalities, "blocks_per_stage": result.plan.blocks_per_stage,
            "warnings": result.warnings}


def _print_text_result(result) -> None:
    console.print(f"[green]wrote[/green] {result.path} ({result.n_tensors} tensors, {human_bytes(result.plan.nbytes)})")
    if result.plan.synthesised:
        console.print(f"  synthesised {len(result.plan.synthesised)} K/V tensors of KV-shared layers "
                      "(absent from transformers-5 checkpoints; never read by llama.cpp)")


def _print_mmproj_result(result) -> None:
    console.print(f"[green]wrote[/green] {result.path} ({result.n_tensors} tensors, {human_bytes(result.plan.nbytes)}, "
                  f"{' + '.join(result.modalities)}; MobileNet-V5 blocks per stage {result.plan.blocks_per_stage})")
    if result.plan.has_audio:
        console.print("  audio is stored for other runtimes: llama.cpp has no Gemma 3n audio graph")


@app.command()
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


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


@app.command()
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Working directory for the demo's files.")] = Path("gemma3n-demo"),
) -> None:
    """Build a tiny Gemma 3n, convert it, and check llama.cpp against transformers."""
    from gemma3n_gguf.demo import run_demo

    rows = run_demo(out, console)
    if any(r.failures for r in rows):
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------
# Validation: validate, check (the CI gate), sweep

ReferenceOpt = Annotated[Path, typer.Option("--reference", help="The Hugging Face checkpoint the GGUF was made from (run in transformers, fp32).")]
TextOpt = Annotated[Path | None, typer.Option("--text", help="UTF-8 text file to evaluate on (default: the multilingual text shipped with gemma3n-gguf).")]
ChunksOpt = Annotated[int | None, typer.Option("--chunks", help="Evaluate at most this many windows (default: all; -1: all).")]
ValidateMmprojOpt = Annotated[Path | None, typer.Option("--mmproj", help="Projector GGUF, needed by --image/--audio.")]
ImageOpt = Annotated[list[Path] | None, typer.Option("--image", help="Image whose embeddings to compare (repeatable).")]
AudioOpt = Annotated[list[Path] | None, typer.Option("--audio", help="PCM WAV file whose embeddings to compare on the reference path (repeatable).")]
AlignVocabOpt = Annotated[bool, typer.Option("--align-vocab", help="Compare a GGUF whose vocabulary size differs from the reference's over the shared ids, instead of refusing it.")]
CacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Where reference passes are cached (default: ~/.cache/gemma3n-gguf/reference).")]


@app.command("validate")
def validate_cmd(
    model: GGUFArg,
    reference: ReferenceOpt,
    mmproj: ValidateMmprojOpt = None,
    text: TextOpt = None,
    image: ImageOpt = None,
    audio: AudioOpt = None,
    ctx: Annotated[int, typer.Option("--ctx", help="Window size in tokens (llama-perplexity's -c).")] = 512,
    chunks: ChunksOpt = None,
    align_vocab: AlignVocabOpt = False,
    cache_dir: CacheDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare a GGUF with its reference checkpoint: perplexity, KL divergence, top-1 agreement."""
    from gemma3n_gguf.validate.pipeline import validate
    from gemma3n_gguf.cli.tables import report_table

    with phase_progress(enabled=not json_out) as progress:
        report = validate(model, reference, text=text, n_ctx=ctx, chunks=chunks, cache_dir=cache_dir,
                          on_progress=progress, mmproj=mmproj, images=image or [], audios=audio or [],
                          align_vocab=align_vocab)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(report_table(report))
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


@app.command("check")
def check_cmd(
    model: GGUFArg,
    reference: ReferenceOpt,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Baseline JSON to check against (see docs/ci-gate.md).")] = None,
    write_baseline: Annotated[Path | None, typer.Option("--write-baseline", help="Record this model's numbers as a new baseline instead.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help="Write a Markdown summary here (e.g. \"$GITHUB_STEP_SUMMARY\").")] = None,
    text: TextOpt = None,
    ctx: Annotated[int | None, typer.Option("--ctx", help="Window size (default: the baseline's, or 512).")] = None,
    chunks: ChunksOpt = None,
    mmproj: ValidateMmprojOpt = None,
    image: ImageOpt = None,
    audio: AudioOpt = None,
    align_vocab: AlignVocabOpt = False,
    cache_dir: CacheDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """CI gate: validate MODEL against a baseline. Exit 0 = pass, 1 = regression, 2 = usage error."""
    from gemma3n_gguf.core.errors import BaselineError
    from gemma3n_gguf.validate.gate import ci
    from gemma3n_gguf.validate.gate.reports import write_junit, write_summary
    from gemma3n_gguf.cli.tables import gate_table

    if (baseline is None) == (write_baseline is None):
        _usage_error("give exactly one of --baseline FILE (check) and --write-baseline FILE (record)")
    options = dict(text=text, n_ctx=ctx, chunks=chunks, align_vocab=align_vocab or None, cache_dir=cache_dir,
                   mmproj=mmproj, images=image or [], audios=audio or [])
    try:
        with phase_progress(enabled=not json_out) as progress:
            if write_baseline is not None:
                _, document = ci.record_baseline(model, reference, write_baseline, on_progress=progress, **options)
            else:
                result = ci.check(model, reference, baseline, on_progress=progress, **options)
    except BaselineError as exc:
        _usage_error(str(exc))
    if write_baseline is not None:
        print_json(document) if json_out else console.print(f"[green]wrote[/green] baseline {write_baseline} "
                                                             f"({len(document['checks'])} checks)")
        return
    if junit is not None:
        write_junit(junit, result)
    if summary is not None:
        write_summary(summary, result)
    print_json(result.to_dict()) if json_out else console.print(gate_table(result))
    if not result.passed:
        raise typer.Exit(1)


def _usage_error(message: str) -> None:
    err_console.print(f"[bold red]usage error:[/bold red] {escape(message)}", highlight=False)
    raise typer.Exit(2)


@app.command("sweep")
def sweep_cmd(
    checkpoint: CheckpointArg,
    schemes: Annotated[str, typer.Option("--schemes", help="Comma-separated quantization schemes.")] = "Q2_K,Q3_K_M,Q4_K_M,Q5_K_M,Q6_K,Q8_0",
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the models, sweep.md, sweep.json and sweep.png.")] = Path("sweep"),
    text: TextOpt = None,
    ctx: Annotated[int, typer.Option("--ctx", help="Window size in tokens.")] = 512,
    chunks: ChunksOpt = None,
    cache_dir: CacheDirOpt = None,
    delete_models: Annotated[bool, typer.Option("--delete-models", help="Remove each quantized file once validated.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Quantize a checkpoint with several schemes and validate each: size against quality."""
    from gemma3n_gguf.validate.sweep.run import sweep
    from gemma3n_gguf.cli.tables import sweep_table

    names = [name.strip() for name in schemes.split(",") if name.strip()]
    with phase_progress(enabled=not json_out) as progress:
        result = sweep(checkpoint, names, out, text=text, n_ctx=ctx, chunks=chunks, cache_dir=cache_dir,
                       keep_models=not delete_models, on_progress=progress)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(sweep_table(result))
    console.print("[green]wrote[/green] " + ", ".join(result.outputs.values()))


TypeOpt = Annotated[str | None, typer.Option(help="A ggml type: Q8_0, Q6_K, Q4_K, F16, ...")]


@app.command("quantize")
def quantize_cmd(
    source: Annotated[Path, typer.Argument(help="Checkpoint directory (one pass) or an F32/F16/BF16 GGUF.")],
    scheme: Annotated[str | None, typer.Option("--scheme", "-s", help="Q4_K_M (default), Q8_0, Q6_K, Q5_K_M, Q3_K_M, IQ4_XS, ...")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output .gguf path.")] = None,
    imatrix: Annotated[str | None, typer.Option("--imatrix", help="Importance matrix (llama.cpp GGUF or .dat).")] = None,
    tensor_type: Annotated[list[str] | None, typer.Option("--tensor-type", help="REGEX=TYPE for matching tensors; repeatable, first match wins.")] = None,
    token_embedding_type: TypeOpt = None,
    ple_type: Annotated[str | None, typer.Option(help="Type of the PLE table (per_layer_token_embd).")] = None,
    output_tensor_type: TypeOpt = None,
    pure: Annotated[bool, typer.Option(help="No per-tensor mixing: every quantizable tensor gets the scheme's type.")] = False,
    recipe: Annotated[Path | None, typer.Option(help="TOML file of named recipes (docs/recipes.md).")] = None,
    recipe_name: Annotated[str | None, typer.Option(help="The recipe to use from --recipe.")] = None,
    allow_requantize: Annotated[bool, typer.Option(help="Accept an already quantized GGUF as input.")] = False,
    intermediate: Annotated[str, typer.Option(help="From a checkpoint: write what convert --outtype f32|f16|bf16 + llama-quantize would (kept tensors stay in that type).")] = "f32",
    force: Annotated[bool, typer.Option(help="As for convert: accept a config llama.cpp would run wrongly.")] = False,
    exact_mm_tokens: QuantizeExactMmTokensOpt = False,
    threads: Annotated[int | None, typer.Option(help="Kernel threads (default: all cores).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show the plan (types, sizes, PLE share); write nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Quantize a checkpoint in one pass (or requantize a GGUF), byte-identical to llama-quantize."""
    from gemma3n_gguf.quantize.onepass import plan_quantization, quantize
    from gemma3n_gguf.quantize.recipes import load_recipe, resolve_options

    if recipe_name and not recipe:
        raise typer.BadParameter("--recipe-name needs --recipe FILE")
    chosen = load_recipe(recipe, recipe_name) if recipe else None
    scheme_, options = resolve_options(chosen, scheme=scheme, tensor_type=tensor_type or (),
                                       token_embedding_type=token_embedding_type, ple_type=ple_type,
                                       output_tensor_type=output_tensor_type, pure=pure)
    common = dict(scheme=scheme_, options=options, imatrix=imatrix, allow_requantize=allow_requantize,
                  intermediate=intermediate, force=force, exact_mm_tokens=exact_mm_tokens)
    if dry_run:
        _print_quantize_outcome(plan_quantization(source, **common), None, json_out)
        return
    with byte_progress(f"quantizing {scheme_.name}", enabled=not json_out) as progress:
        result = quantize(source, output, threads=threads, on_progress=progress, **common)
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


@app.command("imatrix")
def imatrix_cmd(
    checkpoint: CheckpointArg,
    text: Annotated[Path, typer.Option("--text", help="Calibration text file (UTF-8).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output imatrix path (llama.cpp's GGUF format).")] = Path("imatrix.gguf"),
    ctx: Annotated[int, typer.Option("--ctx", help="Tokens per chunk (llama-imatrix -c).")] = 512,
    chunks: Annotated[int | None, typer.Option("--chunks", help="Use at most N chunks (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compute an importance matrix with the transformers reference model, for quantize --imatrix."""
    from gemma3n_gguf.quantize.calibrate import compute_imatrix, read_calibration_text
    from gemma3n_gguf.quantize.imatrix import write_imatrix_gguf

    with phase_progress(enabled=not json_out) as progress:
        on_window = (lambda done, total: progress("imatrix chunks", done, total)) if progress else None
        result = compute_imatrix(checkpoint, read_calibration_text(text), dataset=str(text), n_ctx=ctx,
                                 chunks=chunks, on_progress=on_window)
    write_imatrix_gguf(output, result.imatrix)
    summary = {"output": str(output), "dataset": str(text), "entries": len(result.imatrix.entries), "chunks": result.n_windows,
               "chunk_size": ctx, "tokens": result.n_tokens, "no_entries_kv_shared": result.shared_kv_skipped}
    if json_out:
        print_json(summary)
        return
    console.print(f"[green]wrote[/green] {output} ({summary['entries']} entries, {result.n_windows} chunks of {ctx} tokens)")
    if result.shared_kv_skipped:
        console.print(f"no entries for the K/V of the KV-shared layers ({', '.join(result.shared_kv_skipped[:2])}, ...): "
                      "llama.cpp never computes them, so llama-imatrix records none and llama-quantize "
                      "quantizes them without imatrix data", highlight=False)


def main() -> None:
    try:
        app()
    except Gemma3nGGUFError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
