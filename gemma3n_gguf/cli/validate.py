"""The validation commands: ``validate``, ``check`` (the CI gate) and ``sweep``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gemma3n_gguf.cli.console import console, err_console, phase_progress, print_json
from gemma3n_gguf.cli.options import CheckpointArg, GGUFArg, JsonOpt, ReferenceModeOpt, RepackOpt

ReferenceOpt = Annotated[Path, typer.Option("--reference", help="The Hugging Face checkpoint the GGUF was made from (run in transformers, fp32).")]
TextOpt = Annotated[Path | None, typer.Option("--text", help="UTF-8 text file to evaluate on (default: the multilingual text shipped with gemma3n-gguf).")]
ChunksOpt = Annotated[int | None, typer.Option("--chunks", help="Evaluate at most this many windows (default: all; -1: all).")]
ValidateMmprojOpt = Annotated[Path | None, typer.Option("--mmproj", help="Projector GGUF, needed by --image/--audio.")]
ImageOpt = Annotated[list[Path] | None, typer.Option("--image", help="Image whose embeddings to compare (repeatable).")]
AudioOpt = Annotated[list[Path] | None, typer.Option("--audio", help="PCM WAV file whose embeddings to compare on the reference path (repeatable).")]
AlignVocabOpt = Annotated[bool, typer.Option("--align-vocab", help="Compare a GGUF whose vocabulary size differs from the reference's over the shared ids, instead of refusing it.")]
CacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Where reference passes are cached (default: ~/.cache/gemma3n-gguf/reference).")]


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
    reference_mode: ReferenceModeOpt = "auto",
    repack: RepackOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Compare a GGUF with its reference checkpoint: perplexity, KL divergence, top-1 agreement."""
    from gemma3n_gguf.validate.pipeline import validate
    from gemma3n_gguf.cli.tables import report_table

    with phase_progress(enabled=not json_out) as progress:
        report = validate(model, reference, text=text, n_ctx=ctx, chunks=chunks, cache_dir=cache_dir,
                          on_progress=progress, mmproj=mmproj, images=image or [], audios=audio or [],
                          align_vocab=align_vocab, reference_mode=reference_mode, repack=repack)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(report_table(report))
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


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
    reference_mode: ReferenceModeOpt = "auto",
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
                   mmproj=mmproj, images=image or [], audios=audio or [], reference_mode=reference_mode)
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


def sweep_cmd(
    checkpoint: CheckpointArg,
    schemes: Annotated[str, typer.Option("--schemes", help="Comma-separated quantization schemes.")] = "Q2_K,Q3_K_M,Q4_K_M,Q5_K_M,Q6_K,Q8_0",
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the models, sweep.md, sweep.json and sweep.png.")] = Path("sweep"),
    text: TextOpt = None,
    ctx: Annotated[int, typer.Option("--ctx", help="Window size in tokens.")] = 512,
    chunks: ChunksOpt = None,
    cache_dir: CacheDirOpt = None,
    delete_models: Annotated[bool, typer.Option("--delete-models", help="Remove each quantized file once validated.")] = False,
    reference_mode: ReferenceModeOpt = "auto",
    repack: RepackOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Quantize a checkpoint with several schemes and validate each: size against quality."""
    from gemma3n_gguf.validate.sweep.run import sweep
    from gemma3n_gguf.cli.tables import sweep_table

    names = [name.strip() for name in schemes.split(",") if name.strip()]
    with phase_progress(enabled=not json_out) as progress:
        result = sweep(checkpoint, names, out, text=text, n_ctx=ctx, chunks=chunks, cache_dir=cache_dir,
                       keep_models=not delete_models, on_progress=progress, reference_mode=reference_mode,
                       repack=repack)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(sweep_table(result))
    console.print("[green]wrote[/green] " + ", ".join(result.outputs.values()))
