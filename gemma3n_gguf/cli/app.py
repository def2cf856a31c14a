"""The ``gemma3n-gguf`` Typer app: which function answers which command, and how errors are printed."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from gemma3n_gguf.cli import checkpoints, convert, quantize, validate
from gemma3n_gguf.cli.console import err_console
from gemma3n_gguf.core.errors import Gemma3nGGUFError

app = typer.Typer(
    name="gemma3n-gguf",
    help="Convert, quantize and validate Gemma 3n checkpoints as GGUF files for llama.cpp, Ollama and LM Studio.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)

# In the order `--help` lists them.
COMMANDS = (
    ("make-checkpoint", checkpoints.make_checkpoint_cmd),
    ("convert", convert.convert),
    ("inspect", convert.inspect),
    ("demo", checkpoints.demo),
    ("validate", validate.validate_cmd),
    ("check", validate.check_cmd),
    ("sweep", validate.sweep_cmd),
    ("quantize", quantize.quantize_cmd),
    ("imatrix", quantize.imatrix_cmd),
)
for _name, _function in COMMANDS:
    app.command(_name)(_function)


def main() -> None:
    """Run the app; a library error becomes one red line on stderr and exit status 1."""
    try:
        app()
    except Gemma3nGGUFError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
