"""The ``gemma3n-gguf`` Typer app: which function answers which command, and how errors are printed."""

from __future__ import annotations

import functools
import signal
import sys

import typer
from rich.markup import escape

from gemma3n_gguf.cli import checkpoints, convert, package, quantize, runtime, validate
from gemma3n_gguf.cli.console import err_console
from gemma3n_gguf.cli.slice import slice_cmd
from gemma3n_gguf.core.errors import Gemma3nGGUFError
from gemma3n_gguf.core.extras import require_extra

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
    ("slice", slice_cmd),
    ("modelfile", package.modelfile_cmd),
    ("package", package.package_cmd),
)
# Command groups (``gemma3n-gguf runtime build``), listed after the commands.
GROUPS = (
    ("runtime", runtime.app),
)
# Commands that run the transformers reference; without the extra they print its install line.
NEEDS_REFERENCE_EXTRA = frozenset({"make-checkpoint", "demo", "validate", "check", "sweep", "imatrix", "modelfile", "package"})


def _requiring(extra: str, name: str, function):
    """``function`` preceded by the check that ``extra`` is installed (options and help unchanged)."""

    @functools.wraps(function)
    def checked(*args, **kwargs):
        require_extra(extra, name)
        return function(*args, **kwargs)

    return checked


for _name, _function in COMMANDS:
    app.command(_name)(_requiring("reference", _name, _function) if _name in NEEDS_REFERENCE_EXTRA else _function)
for _name, _group in GROUPS:
    app.add_typer(_group, name=_name)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so ``with`` blocks remove their ``.partial`` files."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Run the app; a library error becomes one red line on stderr and exit status 1."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except Gemma3nGGUFError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
