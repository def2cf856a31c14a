"""Commands that ship models: ``modelfile`` (Ollama) and ``package`` (a ready-to-publish directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gemma3n_gguf.cli.console import console, err_console, print_json
from gemma3n_gguf.cli.options import JsonOpt

TargetOpt = Annotated[str, typer.Option(
    "--target", help="Runtime profile: llama.cpp (llama-quantize's exact output), ollama (PLE table in a type "
                     "Ollama's GPU path gathers rows from: F16 unless the scheme's own is one, Q8_0 with "
                     "--ple-type Q8_0; keys typed as its readers expect) or lmstudio (publisher/model/ layout "
                     "with mmproj-*.gguf beside the model). Choices are printed and recorded in the GGUF.")]

ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", help="NAME=VALUE Ollama PARAMETER (repeatable); checked against Ollama's names and value types "
                    "and overriding what the checkpoint suggests.")]


def modelfile_cmd(
    model: Annotated[Path, typer.Argument(help="The text GGUF.")],
    mmproj: Annotated[Path | None, typer.Option("--mmproj", help="Projector GGUF (vision + audio), a second FROM.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="Default system prompt (SYSTEM).")] = None,
    param: ParamOpt = None,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="The checkpoint the GGUF came from: sampling from its generation_config.json, "
                             "LICENSE from its license file. Without it, the GGUF's general.sampling.* keys.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Modelfile path (default: Modelfile beside MODEL).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write an Ollama Modelfile whose TEMPLATE renders exactly what the GGUF's chat template renders."""
    from gemma3n_gguf.package.modelfile import write_modelfile

    path, modelfile = write_modelfile(model, output, mmproj=mmproj, system=system, params=param or [],
                                      checkpoint=checkpoint)
    if json_out:
        print_json({"output": str(path), "from": modelfile.froms, "parameters": modelfile.parameters,
                    "system": modelfile.system, "license": modelfile.license is not None, "chosen": modelfile.notes})
        return
    console.print(f"[green]wrote[/green] {path} (FROM {', '.join(modelfile.froms)})", highlight=False)
    for what, choice in modelfile.notes.items():
        console.print(f"  {what}: {choice}", highlight=False)
    console.print(f"  run: ollama create NAME -f {path}", highlight=False)


def print_target_choices(target: str, choices: tuple[str, ...]) -> None:
    """The profile's choices, on stderr so that --json output stays one document."""
    if target != "llama.cpp" or choices:
        err_console.print(f"--target {target}: " + ("; ".join(choices) or "no type changes"), highlight=False)


def package_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Hugging Face checkpoint directory.")],
    schemes: Annotated[str, typer.Option("--schemes", help="Comma-separated quantization schemes.")] = "Q4_K_M,Q8_0",
    out: Annotated[Path, typer.Option("-o", "--out", help="Package directory (created; re-running updates it).")] = Path("dist"),
    mmproj: Annotated[bool, typer.Option("--mmproj", help="Also write and validate the projector (vision + audio).")] = False,
    mmproj_type: Annotated[str, typer.Option("--mmproj-type", help="Projector type: f32, f16, bf16 or q8_0.")] = "f16",
    target: TargetOpt = "llama.cpp",
    publisher: Annotated[str, typer.Option("--publisher", help="LM Studio publisher directory (--target lmstudio).")] = "gemma3n-gguf",
    text: Annotated[Path | None, typer.Option("--text", help="UTF-8 text to validate on (default: the built-in text).")] = None,
    ctx: Annotated[int, typer.Option("--ctx", help="Validation window size in tokens.")] = 512,
    chunks: Annotated[int | None, typer.Option("--chunks", help="Validate on at most this many windows (default: all).")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", help="Image for the projector's validation (repeatable; default: a built-in probe).")] = None,
    audio: Annotated[list[Path] | None, typer.Option("--audio", help="PCM WAV for the projector's validation (repeatable).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Reference cache directory.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Quantize, validate and document a checkpoint as a ready-to-publish directory (re-runs skip what is up to date)."""
    from gemma3n_gguf.cli.console import phase_progress
    from gemma3n_gguf.package.build import PackageOptions, build_package

    options = PackageOptions(schemes=tuple(s.strip() for s in schemes.split(",") if s.strip()), mmproj=mmproj,
                             mmproj_type=mmproj_type, target=target, publisher=publisher, text=text, n_ctx=ctx,
                             chunks=chunks, cache_dir=cache_dir, images=tuple(image or ()), audios=tuple(audio or ()))
    with phase_progress(enabled=not json_out) as progress:
        result = build_package(checkpoint, out, options, on_progress=progress)
    if json_out:
        print_json({"root": str(result.root), "files": result.files, "ran": result.ran, "skipped": result.skipped,
                    "target_choices": result.choices})
        return
    for scheme, choices in result.choices.items():
        print_target_choices(f"{target} ({scheme})", tuple(choices))
    console.print(f"[green]package[/green] {result.root}: {len(result.files)} files; ran {len(result.ran)} steps, "
                  f"{len(result.skipped)} already up to date", highlight=False)
    for name in result.files:
        console.print(f"  {name}", highlight=False)
