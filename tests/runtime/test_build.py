"""``gemma3n-gguf runtime build``: the cached runtime is reused without building (no compiler
needed), holds the libraries and the tools, and the tools run on its libraries; a missing compiler
and a patch that does not apply give one line, exit 1, and nothing that looks built.

Nothing here builds the real runtime: the reuse tests read the cache the install step (.ci/run)
built, the failure tests use a temporary cache that fails before compiling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli
from gemma3n_gguf.runtime.build import (
    LIBRARY_TARGETS, PATCH_DIR, TOOL_TARGETS, build_key, build_percent, fetch_sdist, patches, tool_path,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def no_build_tools(tmp_path, monkeypatch):
    """A PATH without cmake or a compiler, and CC/CXX naming none."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("CXX", "/nonexistent/c++")


def test_a_second_run_reuses_the_cache_without_building(patched_runtime, no_build_tools, capsys):
    """With no compiler anywhere, the command still succeeds: it found the complete directory and
    built nothing; its last stdout line is that directory."""
    marker = next(patched_runtime.glob("BUILD_OK"))
    before = marker.stat().st_mtime_ns
    run = run_cli(capsys, "runtime", "build", "--cache-dir", str(patched_runtime.parent))
    assert run.code == 0, run.err
    assert run.out.splitlines()[-1] == str(patched_runtime)
    assert "configuring" not in run.err and "applying" not in run.err and "error" not in run.err
    assert marker.stat().st_mtime_ns == before
    assert not list(patched_runtime.parent.glob("*.partial"))


def test_the_directory_holds_the_libraries_and_the_tools(patched_runtime):
    for name in LIBRARY_TARGETS:
        assert (patched_runtime / f"lib{name}.so").exists(), name
    for tool in TOOL_TARGETS:
        assert tool_path(patched_runtime, tool).is_file(), tool
    # the marker lists the patches built in, in order
    assert (patched_runtime / "BUILD_OK").read_text().split() == [p.name for p in patches()]


@pytest.mark.parametrize("tool", TOOL_TARGETS)
def test_each_tool_runs_on_the_directory_s_own_libraries(patched_runtime, tool):
    """No LD_LIBRARY_PATH: the tools find libllama, libmtmd and libggml* beside bin/ (RPATH)."""
    path = tool_path(patched_runtime, tool)
    linked = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                            check=True).stdout
    assert "not found" not in linked, linked
    resolved = dict(line.split()[:3:2] for line in linked.splitlines() if " => " in line)
    for library in ("libllama.so.0", "libggml-base.so.0", "libggml-cpu.so.0"):
        assert Path(resolved[library]).resolve().parent == patched_runtime.resolve(), linked
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                             timeout=60)
    assert version.returncode == 0 and "version:" in version.stderr + version.stdout, version.stderr


def test_a_missing_compiler_is_one_line_and_builds_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    cache = tmp_path / "cache"
    run = run_cli(capsys, "runtime", "build", "--cache-dir", str(cache), "--sdist", str(fetch_sdist(fetch=False)))
    assert run.code == 1
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: /nonexistent/cc, /nonexistent/c++ not found:"), run.err
    assert "Traceback" not in run.err and run.out == ""
    assert not cache.exists() or not any(cache.iterdir())


def _build_module(tmp_path, *args, env=None):
    """``python -m gemma3n_gguf.runtime.build`` (the install step of .ci/run) on a temporary cache."""
    cache = tmp_path / "cache"
    run = subprocess.run([sys.executable, "-m", "gemma3n_gguf.runtime.build", "--cache", str(cache),
                          "--sdist", str(fetch_sdist(fetch=False)), *args],
                         capture_output=True, text=True, env=env, timeout=600)
    return run, cache


def _one_error(run, fragment):
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and sum(line.startswith("error:") for line in lines) == 1, run.stderr
    assert lines[-1].startswith("error:") and fragment in lines[-1], lines[-1]


def test_the_install_step_without_tools_is_one_line(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    run, cache = _build_module(tmp_path, env={"PATH": str(empty), "HOME": str(tmp_path)})
    _one_error(run, "cmake, cc, c++ not found")
    assert not cache.exists() or not any(cache.iterdir())


def test_a_patch_that_does_not_apply_is_one_line_and_leaves_no_build(tmp_path):
    broken = tmp_path / "patches"
    broken.mkdir()
    for patch in patches():
        (broken / patch.name).write_text(patch.read_text())
    first = patches()[0]
    text = first.read_text()
    assert "attn_post_norm" in text
    (broken / first.name).write_text(text.replace("attn_post_norm", "attn_post_nrom"))
    run, cache = _build_module(tmp_path, "--patches", str(broken))
    _one_error(run, f"applying {first.name} failed (patch exit 1)")
    assert not cache.exists() or not any(cache.rglob("BUILD_OK")) and not any(cache.rglob("libllama.so"))


def test_the_cache_key_follows_the_patches(tmp_path):
    sdist = fetch_sdist(fetch=False)
    changed = tmp_path / "0001-changed.patch"
    changed.write_text(patches()[0].read_text() + "\n")
    assert build_key(sdist, patches()) == build_key(sdist, patches(PATCH_DIR))
    assert build_key(sdist, patches()) != build_key(sdist, [changed, *patches()[1:]])
    assert build_key(sdist, patches()) != build_key(sdist, patches()[:-1])


@pytest.mark.parametrize(("line", "percent"), [
    ("[ 42%] Building CXX object vendor/llama.cpp/src/CMakeFiles/llama.dir/llama.cpp.o", 42),
    ("[100%] Linking CXX executable ../../bin/llama-server", 100),
    ("[17/240] Building CXX object vendor/llama.cpp/common/CMakeFiles/llama-common.dir/arg.cpp.o", 7),
    ("[240/240] Linking CXX executable bin/llama-imatrix", 100),
    ("-- Configuring done", None),
    ("/src/llama.cpp:12:3: warning: unused variable [-Wunused-variable]", None),
])
def test_build_percent_reads_make_and_ninja_lines(line, percent):
    assert build_percent(line) == percent


def test_patches_resolve_from_a_relative_directory(monkeypatch):
    """``--patches gemma3n_gguf/runtime/patches`` from the repository root: patch runs in the
    vendored tree, so the paths it gets must not be relative to where the command started."""
    monkeypatch.chdir(Path(PATCH_DIR).parents[2])
    found = patches(Path("gemma3n_gguf/runtime/patches"))
    assert found and all(path.is_absolute() and path.is_file() for path in found)
