"""Ollama Modelfiles for a Gemma 3n GGUF (and its projector), written the way Ollama's parser reads them.

Instructions used: FROM, TEMPLATE, SYSTEM, PARAMETER, LICENSE; every Ollama since 0.9.3 accepts
them. Never RENDERER/PARSER: Ollama has no built-in renderer for gemma3n.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gemma3n_gguf import __version__
from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.core.errors import PackageError
from gemma3n_gguf.package.chat_template import END_OF_TURN, check_gemma_format, ollama_template
from gemma3n_gguf.package.parameters import check_value, format_number, parse_assignments
from gemma3n_gguf.package.sources import check_projector, read_chat_facts, read_license, read_sampling


@dataclass
class Modelfile:
    froms: list[str]
    template: str
    parameters: list[tuple[str, str]]
    system: str | None = None
    license: str | None = None
    notes: dict[str, str] = field(default_factory=dict)  # what was chosen and why, for the user

    def render(self) -> str:
        lines = [f"# Ollama Modelfile written by gemma3n-gguf {__version__}: ollama create NAME -f <this file>"]
        lines += [f"FROM {quote(path)}" for path in self.froms]
        lines.append(f"TEMPLATE {quote(self.template)}")
        if self.system is not None:
            lines.append(f"SYSTEM {quote(self.system)}")
        lines += [f"PARAMETER {name} {quote(value)}" for name, value in self.parameters]
        if self.license is not None:
            lines.append(f"LICENSE {quote(self.license)}")
        return "\n".join(lines) + "\n"


def quote(value: str) -> str:
    """``value`` as Ollama's parser reads it back unchanged: bare, or in triple quotes."""
    if '"""' in value:
        raise PackageError('a Modelfile value cannot contain """ (Ollama\'s parser ends the value there)')
    if any(not (ch.isprintable() or ch in "\n\t") for ch in value):
        raise PackageError("a Modelfile value cannot contain control characters: Ollama's parser drops them")
    bare_safe = value and "\n" not in value and value == value.strip() and not value.startswith('"')
    return value if bare_safe else f'"""{value}"""'


def build_modelfile(model: Path, destination: Path, *, mmproj: Path | None = None, system: str | None = None,
                    params: list[str] = (), checkpoint: Path | None = None) -> Modelfile:
    """The Modelfile for ``model`` as it will sit at ``destination``; every check runs before any write."""
    user_params = parse_assignments(list(params))
    facts = read_chat_facts(model)
    check_gemma_format(facts.chat_template, facts.bos_token)
    if mmproj is not None:
        check_projector(mmproj)
    sampling = read_sampling(model, checkpoint)
    overridden = {name for name, _ in user_params}
    parameters = [("stop", END_OF_TURN)] if "stop" not in overridden else []
    for name, value in sampling.values.items():
        if name not in overridden:
            parameters.append((name, format_number(value)))
            check_value(name, parameters[-1][1])
    parameters += user_params
    froms = [_relative_from(p, destination.parent) for p in (model, mmproj) if p is not None]
    license_text = read_license(checkpoint)
    notes = {"sampling": sampling.source, "stop": f"{END_OF_TURN} (ends every Gemma turn)",
             "license": "from the checkpoint" if license_text else "none (no LICENSE file in the checkpoint)"}
    return Modelfile(froms=froms, template=ollama_template(facts.add_bos_token, facts.bos_token),
                     parameters=parameters, system=system or None, license=license_text, notes=notes)


def write_modelfile(model: Path, output: Path | None = None, **options) -> tuple[Path, Modelfile]:
    """Build and write the Modelfile (default: ``Modelfile`` beside the model)."""
    destination = output if output is not None else model.parent / "Modelfile"
    modelfile = build_modelfile(model, destination, **options)
    write_text_atomically(destination, modelfile.render())
    return destination, modelfile


def _relative_from(path: Path, directory: Path) -> str:
    relative = Path(os.path.relpath(path.resolve(), directory.resolve())).as_posix()
    return relative if relative.startswith("../") else "./" + relative
