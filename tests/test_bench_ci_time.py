"""bench/ci_time.py end to end on one test file (--tests, --repeat 1): the baseline commit's suite in
its own tree, the current tree on the baseline's tests only, and the current tree's whole file.

tests/validate/test_gate.py has gained tests since the baseline, so the selection must run fewer
tests than the whole file, exactly the ones the baseline ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import report
from harness import RESULT_FIELDS, RUN_FIELDS
import pytest
from junit_select import junit_ids

ROOT = Path(__file__).resolve().parent.parent
TESTS = "tests/validate/test_gate.py"


def test_ci_time_bench_runs_the_baseline_tests_then_and_now(tmp_path):
    work, results_dir = tmp_path / "work", tmp_path / "results"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ci_time.py"), "--repeat", "1", "--tests", TESTS,
                           "--workdir", str(work), "--results-dir", str(results_dir)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (results_dir / "ci_time.json").exists()
    results = json.loads((results_dir / "ci_time.subset.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys() and results["preset"] == "subset"
    runs = {run["role"]: run for run in results["runs"]}
    assert list(runs) == ["baseline", "same_tests", "full_suite"]
    for run in runs.values():
        assert set(RUN_FIELDS) <= run.keys() and run["exit"] == 0 and run["wall_s"] > 0
        assert run["failures"] == run["errors"] == run["skipped"] == 0
    assert 0 < runs["baseline"]["tests"] == runs["same_tests"]["tests"] < runs["full_suite"]["tests"]
    baseline_ids = junit_ids(str(work / "baseline-0.xml"))
    assert junit_ids(str(work / "same_tests-0.xml")) == baseline_ids < junit_ids(str(work / "full_suite-0.xml"))
    # the baseline under its own settings (one process), the current tree under today's (xdist workers)
    assert "bringing up nodes" not in (work / "baseline-0.log").read_text()
    assert "bringing up nodes" in (work / "same_tests-0.log").read_text()
    checks = results["checks"]
    assert checks["ok"] and checks["baseline_imports_its_own_package"] and checks["same_tests_ran_the_baseline_tests"]
    rendered = report.render_results(results)
    assert "| `pytest same_tests` |" in rendered and f"The {runs['baseline']['tests']} tests of" in rendered
    assert "CI's own figure" not in rendered  # CI's 363 s is the whole baseline suite's, not a subset's


@pytest.mark.parametrize(("options", "message"), [
    (["--tests", "/abs/tests/test_gate.py"], "--tests takes paths relative to the repository"),
    (["--baseline", "0" * 40], "is not in this clone"),
    (["--preset", "tiny-text"], "--preset does not apply"),
])
def test_ci_time_refuses_bad_options_in_one_line_before_any_run(tmp_path, options, message):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ci_time.py"), "--workdir", str(tmp_path / "work"),
                           "--results-dir", str(tmp_path / "results"), *options],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # a missed refusal would run suites
    assert done.returncode == 1 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists() and not list((tmp_path / "work").glob("*.log"))
