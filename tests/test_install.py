"""Dependencies by capability: the base install converts, quantizes and inspects without torch;
commands that need the ``reference`` extra say which pip install line to run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli
from gemma3n_gguf.core import extras

ROOT = Path(__file__).resolve().parents[1]
INSTALL_LINE = 'pip install "gemma3n-gguf[reference]"'


@pytest.mark.parametrize("command", ["validate", "check", "sweep", "imatrix", "make-checkpoint", "demo"])
def test_a_command_needing_the_missing_extra_prints_the_install_line(capsys, monkeypatch, tmp_path, command):
    monkeypatch.setitem(extras.EXTRA_MODULES, "reference", ("json", "gemma3n_gguf_absent_module"))
    arguments = {"validate": ["m.gguf", "--reference", "ckpt"], "check": ["m.gguf", "--reference", "ckpt"],
                 "sweep": ["ckpt"], "imatrix": ["ckpt", "--text", "t.txt"], "make-checkpoint": [tmp_path / "c"],
                 "demo": ["-o", tmp_path / "d"]}[command]
    run = run_cli(capsys, command, *arguments)
    assert run.code == 1
    assert run.err.strip().count("\n") == 0
    assert f"{command} needs the reference extra (gemma3n_gguf_absent_module not installed)" in run.err
    assert INSTALL_LINE in run.err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_base_commands_do_not_check_for_the_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(extras.EXTRA_MODULES, "reference", ("gemma3n_gguf_absent_module",))
    run = run_cli(capsys, "inspect", tmp_path / "absent.gguf")
    assert run.code == 1 and "reference extra" not in run.err


def copy_project(destination: Path) -> Path:
    """What ``pip install .`` reads, copied so the build leaves nothing in the work tree."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, destination / name)
    shutil.copytree(ROOT / "gemma3n_gguf", destination / "gemma3n_gguf",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """A clean venv (no system site-packages) with ``pip install .`` and no extras."""
    root = tmp_path_factory.mktemp("base-install")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    source = copy_project(root / "src")
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", str(source)],
                             capture_output=True, text=True, timeout=3600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return venv


def venv_cli(venv: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "gemma3n-gguf"), *map(str, args)], capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_the_base_install_has_no_reference_packages(base_venv):
    probe = "import importlib.util as u; print([m for m in ('torch', 'transformers', 'timm', 'torchvision') if u.find_spec(m)])"
    found = subprocess.run([str(base_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_base_install_converts_quantizes_and_inspects(base_venv, tiny_mm_checkpoint, tmp_path):
    text, projector, quantized = tmp_path / "text-F16.gguf", tmp_path / "mmproj-F16.gguf", tmp_path / "Q4_K_M.gguf"
    for args in (["convert", tiny_mm_checkpoint, "-o", text, "--outtype", "f16"],
                 ["convert", tiny_mm_checkpoint, "--mmproj-only", "-o", projector],
                 ["quantize", tiny_mm_checkpoint, "-s", "Q4_K_M", "-o", quantized]):
        run = venv_cli(base_venv, *args)
        assert run.returncode == 0, run.stderr
    summary = json.loads(venv_cli(base_venv, "inspect", quantized, "--json").stdout)
    assert summary["architecture"] == "gemma3n"
    assert "Q4_K" in summary["tensor_types"]
    assert json.loads(venv_cli(base_venv, "inspect", projector, "--json").stdout)["architecture"] == "clip"


@pytest.mark.slow
def test_the_base_install_refuses_validate_with_the_install_line(base_venv, tiny_mm_checkpoint, tmp_path):
    run = venv_cli(base_venv, "validate", tmp_path / "m.gguf", "--reference", tiny_mm_checkpoint)
    assert run.returncode == 1
    assert re.fullmatch(r"error: validate needs the reference extra \(.*torch.*\): run .*\n", run.stderr)
    assert INSTALL_LINE in run.stderr
