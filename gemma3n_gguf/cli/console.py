"""Rich output helpers shared by the CLI commands (progress bars, tables, JSON)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from gemma3n_gguf.core.units import human_bytes  # noqa: F401  (re-exported for the commands)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one message, one line: never hard-wrapped


@contextlib.contextmanager
def byte_progress(label: str, enabled: bool = True) -> Iterator:
    """Yield an ``on_progress(done, total, what)`` callback drawing a bytes progress bar."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[what]}", style="dim"))
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=None, what="")

        def update(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, what=what)

        yield update


@contextlib.contextmanager
def phase_progress(enabled: bool = True) -> Iterator:
    """Yield an ``on_progress(phase, done, total)`` callback drawing one bar per phase."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console) as progress:
        tasks: dict[str, int] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        yield update


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def key_value_table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="cyan")
    table.add_column()
    for key, value in rows.items():
        table.add_row(str(key), str(value))
    return table
