"""bench/slice_e4b.py runs end to end on tiny-e4b (E4B's layer layout, --repeat 1): every official configuration
sliced and read back against the table, one also quantized in the same pass, under the tiny preset's own name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import report
from harness import RESULT_FIELDS, RUN_FIELDS

from gemma3n_gguf.slice.configs import OFFICIAL_CONFIGS

ROOT = Path(__file__).resolve().parent.parent
PRESET = "tiny-e4b"


@pytest.mark.slow
def test_slice_bench_checks_every_official_configuration(tmp_path):
    results_dir = tmp_path / "results"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "slice_e4b.py"), "--repeat", "1", "--preset", PRESET,
                           "--workdir", str(tmp_path / "work"), "--results-dir", str(results_dir)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (results_dir / "slice_e4b.json").exists()
    results = json.loads((results_dir / f"slice_e4b.{PRESET}.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys() and results["preset"] == PRESET
    expected = [f"{c.slug}:bf16" for c in OFFICIAL_CONFIGS] + ["e2.54b-layer:Q4_K_M"]
    assert [run["role"] for run in results["runs"]] == expected == list(results["checks"])
    for run in results["runs"]:
        assert set(RUN_FIELDS) <= run.keys() and run["exit"] == 0 and run["output_bytes"] > 0
    layers = {c.slug: c.num_layers for c in OFFICIAL_CONFIGS}
    for key, check in results["checks"].items():
        assert check["ok"] and check["widths_ok"] and check["layers"] == layers[key.split(":")[0]]
    assert results["checks"]["e2b:bf16"]["layers"] == 30
    assert "17 outputs checked" in report.render_results(results) and "all pass." in report.render_results(results)
