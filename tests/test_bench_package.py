"""bench/package_e2b.py runs end to end on tiny-mm (--repeat 1; the smallest preset mtmd runs): every stage measured, the
re-run rewrites nothing, and the results file has every field, under the tiny preset's name. One scheme: the stages
per scheme are the same code for each, so a second scheme would only run them again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import RESULT_FIELDS, RUN_FIELDS

ROOT = Path(__file__).resolve().parent.parent
PRESET = "tiny-mm"
SCHEME = "Q4_K_M"
ROLES = ["quantize_Q4_K_M", "projector", "validate_Q4_K_M", "modelfile", "package", "package_rerun"]


@pytest.mark.slow
def test_package_bench_records_every_stage(tmp_path):
    results_dir = tmp_path / "results"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "package_e2b.py"), "--repeat", "1", "--preset", PRESET,
                           "--chunks", "1", "--schemes", SCHEME, "--workdir", str(tmp_path / "work"),
                           "--results-dir", str(results_dir)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (results_dir / "package_e2b.json").exists()
    results = json.loads((results_dir / f"package_e2b.{PRESET}.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys() and results["preset"] == PRESET
    assert [run["role"] for run in results["runs"]] == ROLES
    for run in results["runs"]:
        assert set(RUN_FIELDS) <= run.keys()
        assert run["exit"] == 0 and run["wall_s"] > 0 and 2**20 < run["peak_rss_bytes"] < 2**34
    assert results["checks"]["projector"] is True
    assert results["checks"]["rerun_rewrote"] == []
    assert {"README.md", "SHA256SUMS", "manifest.json", "tiny-mm-Q4_K_M.gguf", "mmproj-tiny-mm-F16.gguf"} <= set(results["checks"]["files"])
