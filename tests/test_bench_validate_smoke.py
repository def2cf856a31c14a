"""bench/validate_e2b.py runs end to end on a tiny checkpoint (--repeat 1, small windows) and records
every run, the reference mode, the memory bound and the side-by-side timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import RESULT_FIELDS, RUN_FIELDS

ROOT = Path(__file__).resolve().parent.parent
PRESET = "tiny-text"


def test_validate_bench_records_every_field(tmp_path):
    workdir, results_dir = tmp_path / "work", tmp_path / "results"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "validate_e2b.py"), "--repeat", "1", "--preset", PRESET,
                           "--also", "", "--ctx", "128", "--chunks", "2", "--sweep-schemes", "Q8_0,Q6_K,Q4_K_M", "--workdir", str(workdir),
                           "--results-dir", str(results_dir)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((results_dir / f"validate_e2b.{PRESET}.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys() and results["preset"] == PRESET
    roles = [run["role"] for run in results["runs"]]
    assert roles == ["quantize", "peer_f16_convert", "validate", "peer_f16_base", "sweep", "imatrix"]
    for run in results["runs"]:
        assert set(RUN_FIELDS) <= run.keys() and run["exit"] == 0 and run["preset"] == PRESET
    validate, base = results["runs"][2]["report"], results["runs"][3]["report"]
    assert validate["protocol"]["n_ctx"] == 128 and validate["protocol"]["windows"] == base["windows"] == 2
    assert base["rows"] == 2 * 64  # the second half of each window, as the reference pass scores
    checks = results["checks"][PRESET]
    assert checks["reference_modes"] == ["streamed"] and checks["validate_exit_ok"]
    assert checks["within_bound"] == {"validate": True, "sweep": True, "imatrix": True}
    assert 0 < checks["validate_peak_rss_bytes"] <= results["checks"]["bound_bytes"]
    assert checks["sweep_reference_runs"] == [1]  # three schemes, one reference pass
    imatrix = results["runs"][5]["report"]
    assert imatrix["reference"]["mode"] == "streamed" and imatrix["chunks"] == 2
    assert checks["reference_pass_s"] > 0 and checks["llama_f16_base_s"] > 0 and checks["reference_over_llama_f16"] > 0
