"""Run the real console entry point in-process and capture what a user would see."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from gemma3n_gguf.cli import main


@dataclass
class CliRun:
    code: int
    out: str
    err: str


def run_cli(capsys, *args: str) -> CliRun:
    old_argv = sys.argv
    sys.argv = ["gemma3n-gguf", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return CliRun(code, captured.out, captured.err)
