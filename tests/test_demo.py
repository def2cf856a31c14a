"""`gemma3n-gguf demo` runs the whole toolkit on tiny-mm; every row bounded, a row out of bounds exits 1."""

from __future__ import annotations

import pytest

from cli_helpers import run_cli

from gemma3n_gguf import demo
from gemma3n_gguf.cli import console as cli_console

pytestmark = pytest.mark.slow

STEPS = ("convert text + projector", "quantize (one pass)", "text F16", "image embeddings (F16)",
         "audio embeddings (F16)", "text Q8_0", "text Q4_K_M", "Ollama Modelfile", "package", "CI gate vs baseline")


def test_demo_passes_then_fails_when_a_bound_is_tightened(capsys, tmp_path, monkeypatch):
    # One table line per row. Rich reads COLUMNS when the console is made, and pytest-xdist workers
    # start with COLUMNS=80, so the width is set on the CLI's console itself.
    monkeypatch.setattr(cli_console.console, "_width", 200)
    run = run_cli(capsys, "demo", "-o", tmp_path)
    assert run.code == 0, run.out + run.err
    assert "all within bounds" in run.out
    for step in STEPS:
        assert step in run.out
    assert (tmp_path / "dist" / "SHA256SUMS").is_file() and (tmp_path / "Modelfile").is_file()

    # Same directory: the checkpoint and reference cache are reused, and the first validated file out
    # of bounds stops the demo, so this run is short.
    monkeypatch.setitem(demo.TEXT_BOUNDS, "F16", (1e-9, 0.99))
    run = run_cli(capsys, "demo", "-o", tmp_path)
    assert run.code == 1
    (row,) = [line for line in run.out.splitlines() if "text F16" in line]
    assert "out of bounds" in row
    assert "1 out of bounds, the later steps not run" in run.out
    assert "text Q8_0" not in run.out and "CI gate vs baseline" not in run.out
