"""The package's shape: import-linter's contracts hold, no import cycle, no module over 400 lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import networkx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gemma3n_gguf"
MAX_MODULE_LINES = 400


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    beside_python = Path(sys.executable).with_name("lint-imports")
    command = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert command, "lint-imports not found: pip install -e '.[test]'"
    return subprocess.run([command, "--config", str(config), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def contract_names(config: Path) -> list[str]:
    return [c["name"] for c in tomllib.loads(config.read_text())["tool"]["importlinter"]["contracts"]]


def test_every_import_linter_contract_is_kept():
    run = lint_imports(ROOT / "pyproject.toml")
    assert run.returncode == 0, run.stdout + run.stderr
    names = contract_names(ROOT / "pyproject.toml")
    assert {"Layers point down", "The base install needs no reference extra"} <= set(names)
    for name in names:
        assert f"{name} KEPT" in run.stdout


def test_the_base_install_contract_catches_a_reference_import(tmp_path):
    # The fixture factory imports torch and transformers: declared a base module, the contract breaks.
    text = (ROOT / "pyproject.toml").read_text()
    widened = text.replace('source_modules = [\n', 'source_modules = [\n    "gemma3n_gguf.fixtures.factory",\n', 1)
    assert widened != text
    config = tmp_path / "pyproject.toml"
    config.write_text(widened)
    run = lint_imports(config)
    assert run.returncode == 1
    assert "The base install needs no reference extra BROKEN" in run.stdout
    assert "gemma3n_gguf.fixtures.factory is not allowed to import torch" in run.stdout


def import_graph() -> networkx.DiGraph:
    """Every import between the package's modules, lazy and TYPE_CHECKING ones included."""
    modules = grimp.build_graph("gemma3n_gguf")
    graph = networkx.DiGraph()
    for module in modules.modules:
        graph.add_node(module)
        graph.add_edges_from((module, imported) for imported in modules.find_modules_directly_imported_by(module))
    return graph


def test_no_modules_import_each_other_in_a_cycle():
    graph = import_graph()
    assert graph.number_of_nodes() > 50 and graph.number_of_edges() > 100  # the graph was really built
    cycles = [sorted(group) for group in networkx.strongly_connected_components(graph) if len(group) > 1]
    assert cycles == []


@pytest.mark.parametrize("module", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_400_lines(module):
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module.relative_to(ROOT)} has {lines} lines: split it by idea"
