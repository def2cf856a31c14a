"""``gemma3n-gguf runtime build``: the patched llama.cpp runtime (libraries and tools), built once."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gemma3n_gguf.cli.console import err_console
from gemma3n_gguf.runtime.build import DEFAULT_CACHE, TOOL_TARGETS, build_runtime

app = typer.Typer(name="runtime", help="The patched llama.cpp runtime this project's files need.",
                  no_args_is_help=True)


@app.command("build")
def build_cmd(
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="Where built runtimes (and the sdist) are kept.")]
    = DEFAULT_CACHE,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel compile jobs.")] = 2,
    sdist: Annotated[Path | None, typer.Option("--sdist", exists=True, dir_okay=False,
                                               help="A local llama-cpp-python 0.3.36 sdist (default: fetched from "
                                                    "PyPI once, hash-checked).")] = None,
) -> None:
    """Build the patched llama.cpp runtime (libraries and tools) once; the last line is its directory.

    Every patch of gemma3n_gguf/runtime/patches, in order, on the pinned llama-cpp-python 0.3.36 sdist;
    a second run with the same patches reuses the cached build."""
    with _percent_bars() as progress:
        runtime_dir = build_runtime(sdist, cache_dir, jobs, log=_step, progress=progress)
    err_console.print(f"tools: {', '.join(str(runtime_dir / 'bin' / tool) for tool in TOOL_TARGETS)}",
                      highlight=False)
    err_console.print(f"use it from llama-cpp-python: LLAMA_CPP_LIB_PATH={runtime_dir} MTMD_CPP_LIB={runtime_dir}",
                      highlight=False)
    sys.stdout.write(f"{runtime_dir}\n")  # never wrapped: scripts read this line


def _step(line: str) -> None:
    err_console.print(f"[dim]{escape(line)}[/dim]", highlight=False)


@contextlib.contextmanager
def _percent_bars() -> Iterator:
    """A ``progress(what, percent)`` callback: one bar per thing built (steps every 10% without a terminal)."""
    if not err_console.is_terminal:
        shown: dict[str, int] = {}

        def every_tenth(what: str, percent: int) -> None:
            if percent >= shown.get(what, -10) + 10:
                shown[what] = percent
                err_console.print(f"  building {what}: {percent}%", highlight=False)

        yield every_tenth
        return
    columns = (TextColumn("[bold]building {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console) as bars:
        tasks: dict[str, int] = {}

        def update(what: str, percent: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=100)
            bars.update(tasks[what], completed=percent)

        yield update
