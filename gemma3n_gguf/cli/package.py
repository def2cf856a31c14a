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
