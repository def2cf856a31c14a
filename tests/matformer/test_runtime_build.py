"""The patched-runtime build refuses in one line, exit 1, and leaves nothing that looks built:
without the tools on PATH, and with a patch that does not apply to the pinned sdist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gemma3n_gguf.runtime.build import PATCH_DIR, fetch_sdist

pytestmark = pytest.mark.slow


def _build(tmp_path, *args, env=None):
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


def test_missing_compiler_is_one_line(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    run, cache = _build(tmp_path, env={"PATH": str(empty), "HOME": str(tmp_path)})
    _one_error(run, "cmake, cc, c++ not found on PATH")
    assert not cache.exists() or not any(cache.iterdir())


def test_a_patch_that_does_not_apply_is_one_line_and_leaves_no_build(tmp_path):
    broken = tmp_path / "patches"
    broken.mkdir()
    for patch in PATCH_DIR.glob("*.patch"):
        text = patch.read_text()
        assert "attn_post_norm" in text
        (broken / patch.name).write_text(text.replace("attn_post_norm", "attn_post_nrom"))
    run, cache = _build(tmp_path, "--patches", str(broken))
    _one_error(run, "applying 0001-gemma3n-per-layer-ffn.patch failed (patch exit 1)")
    assert not cache.exists() or not any(cache.iterdir())
