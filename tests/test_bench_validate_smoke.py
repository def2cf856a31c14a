"""bench/validate_e2b.py runs end to end on a tiny checkpoint (--repeat 1, small windows) and records
every run, the reference mode, the memory bound and the side-by-side timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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
    assert results["runs"][4]["report"]["weight_repack"] is False  # the bound's --no-repack reached the sweep
    imatrix = results["runs"][5]["report"]
    assert imatrix["reference"]["mode"] == "streamed" and imatrix["chunks"] == 2
    assert checks["reference_pass_s"] > 0 and checks["llama_f16_base_s"] > 0 and checks["reference_over_llama_f16"] > 0


def test_confined_bench_runs_validate_inside_the_bound(tmp_path):
    """bench/validate_confined.py on tiny-text: validate in a memory cgroup of the bound, recorded so (sweep
    and imatrix go through the same loop with validate_e2b's commands, smoke-run above)."""
    from confine import ConfinementUnavailable, MemoryCgroup

    try:
        MemoryCgroup(2**30).close()
    except ConfinementUnavailable as exc:
        pytest.skip(f"this machine gives no writable memory cgroup: {exc}")
    workdir, results_dir = tmp_path / "work", tmp_path / "results"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "validate_confined.py"), "--repeat", "1", "--preset",
                           PRESET, "--ctx", "128", "--chunks", "2", "--roles", "validate", "--workdir", str(workdir),
                           "--results-dir", str(results_dir)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((results_dir / f"validate_confined.{PRESET}.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys()
    assert [run["role"] for run in results["runs"]] == ["quantize", "validate"]
    bound = results["checks"]["bound_bytes"]
    for run in results["runs"][1:]:
        assert set(RUN_FIELDS) <= run.keys() and run["exit"] == 0
        assert run["memory_limit_bytes"] == bound and run["oom_kills"] == 0 and 0 < run["cgroup_peak_bytes"] <= bound
    assert "memory_limit_bytes" not in results["runs"][0]  # quantize runs unconfined
    assert results["checks"][PRESET]["within_bound"] == {"validate": True}
    assert results["runs"][1]["report"]["reference"]["mode"] == "streamed"
    assert results["runs"][1]["report"]["protocol"]["weight_repack"] is False  # the bound's --no-repack reached it
