"""The test suite's CI time then and now, on this machine, REPEAT times, in bench/results/ci_time.json.

Issue 8 asks that its change leave CI no slower than it was when the issue was filed, when CI ran
the suite of BASELINE (c801c00) in 363 s. Three runs of ``python -m pytest`` (the last line of
``.ci/run`` then and now; the set-up before it, install and runtime build, is not timed):

- ``baseline``: BASELINE's own tree (``git archive`` into the workdir, its package first on
  PYTHONPATH), under its own pyproject: one process, as its CI ran it;
- ``same_tests``: the current tree under its pyproject (pytest-xdist, both cores, as CI runs it
  now), only the tests the baseline ran, selected by their JUnit ids (bench/junit_select.py);
- ``full_suite``: the current tree's whole suite.

Checks: each run's test counts from its JUnit XML (no failure, error or skip), that ``same_tests``
ran exactly the baseline's test ids, and that the baseline imports its own package.

    python bench/ci_time.py [--repeat 2] [--baseline COMMIT] [--tests PATH ...]

``--tests`` runs only those test paths (relative to the repository) in all three: a smoke run,
written to ``ci_time.subset.json``. Run it alone on the machine: it measures wall time.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, write_results  # noqa: E402
from junit_select import junit_ids  # noqa: E402
from measure import run_measured  # noqa: E402

BENCH = "ci_time"
BASELINE = "c801c002e32cceeae5f31c92b411c6c631e4b856"
BASELINE_CI_SECONDS = 363  # CI's reported time for BASELINE, from the issue tracker (not measured here)
ROOT = Path(__file__).resolve().parent.parent
ROLES = ("baseline", "same_tests", "full_suite")


def main() -> None:
    parser = bench_parser(__doc__, default_preset="suite")
    parser.add_argument("--baseline", default=BASELINE, help="the commit whose suite is the baseline")
    parser.add_argument("--tests", nargs="+", default=[], help="only these test paths, relative to the repository")
    args = parser.parse_args()
    if any(Path(path).is_absolute() for path in args.tests):
        sys.exit("ci_time: --tests takes paths relative to the repository (each suite runs in its own tree)")
    if args.preset != args.default_preset:
        sys.exit("ci_time: --preset does not apply (the suites build their own checkpoints); "
                 "use --tests for a smoke run")
    args.preset = "subset" if args.tests else args.default_preset
    args.workdir = args.workdir.resolve()  # the suites run in other directories
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.baseline = resolve_commit(args.baseline)
    baseline_tree = export_commit(args.baseline, args.workdir / f"baseline-{args.baseline[:12]}")
    runs = []
    for repeat in range(args.repeat):
        for role in ROLES:
            junit = args.workdir / f"{role}-{repeat}.xml"
            junit.unlink(missing_ok=True)  # a run that writes none must not be read as an earlier one
            tree = baseline_tree if role == "baseline" else ROOT
            plugin = ["-p", "junit_select"] if role == "same_tests" else []
            env = suite_env(tree, junit_select=args.workdir / "baseline-0.xml" if role == "same_tests" else None)
            cmd = [sys.executable, "-m", "pytest", "-q", *plugin, f"--junitxml={junit}", *args.tests]
            print(f"[{repeat + 1}/{args.repeat}] {role}: {' '.join(cmd[1:])}", flush=True)
            m = run_measured(f"pytest {role}", cmd, log_path=str(args.workdir / f"{role}-{repeat}.log"), env=env,
                             cwd=tree)
            runs.append(m.record(role, repeat, **junit_counts(junit)))
    checks = check_runs(args, runs, baseline_tree)
    path = write_results(BENCH, args, runs, checks)
    print(f"wrote {path}; " + ("all checks pass" if checks["ok"] else
                               f"checks failed: {checks}; the runs' logs are {args.workdir}/ROLE-REPEAT.log"))
    sys.exit(0 if checks["ok"] else 1)


def resolve_commit(ref: str) -> str:
    """``ref``'s full commit id; one line and exit 1 when this clone lacks it (a shallow clone)."""
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ci_time: commit {ref} is not in this clone; fetch the full history (git fetch --unshallow) "
                 "or pass --baseline")
    return done.stdout.strip()


def export_commit(commit: str, into: Path) -> Path:
    """The tree of ``commit`` as files (no checkout, the repository untouched), exported once."""
    if (into / "pyproject.toml").is_file():
        return into
    done = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    partial = into.with_name(into.name + ".partial")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(partial, filter="data")
    partial.rename(into)
    return into


def suite_env(tree: Path, junit_select: Path | None) -> dict[str, str]:
    """The environment of one suite: ``tree``'s package imported before any installed one, the
    selection plugin where one is asked for, and nothing of a pytest this script may itself run under."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OMP_"))}
    env["PYTHONPATH"] = str(tree)
    if junit_select is not None:
        env["PYTHONPATH"] += os.pathsep + str(ROOT / "bench")
        env["JUNIT_SELECT"] = str(junit_select)
    return env


def junit_counts(path: Path) -> dict:
    """Tests, failures, errors and skips as the JUnit XML of one run records them (no tests when the
    run wrote no readable file)."""
    try:
        suite = ET.parse(path).getroot().find("testsuite")
    except (OSError, ET.ParseError):
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    return {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}


def check_runs(args, runs: list[dict], baseline_tree: Path) -> dict:
    first = args.workdir / "baseline-0.xml"
    baseline_ids = junit_ids(str(first)) if first.is_file() else set()
    same_ids = [junit_ids(str(args.workdir / f"same_tests-{r}.xml")) for r in range(args.repeat)
                if (args.workdir / f"same_tests-{r}.xml").is_file()]
    passed = all(r["exit"] == 0 and r["tests"] > 0 and not (r["failures"] or r["errors"] or r["skipped"]) for r in runs)
    checks = {
        "baseline_commit": args.baseline,
        "baseline_ci_seconds": BASELINE_CI_SECONDS if args.baseline == BASELINE and not args.tests else None,
        "baseline_imports_its_own_package": imports_own_package(baseline_tree),
        "baseline_tests": len(baseline_ids),
        "same_tests_ran_the_baseline_tests": bool(same_ids) and all(ids == baseline_ids for ids in same_ids),
        "all_passed": passed,
    }
    checks["ok"] = bool(baseline_ids) and all(checks[k] for k in ("baseline_imports_its_own_package",
                                                                "same_tests_ran_the_baseline_tests", "all_passed"))
    return checks


def imports_own_package(tree: Path) -> bool:
    """Whether the baseline's environment imports the baseline's gemma3n_gguf rather than the installed
    one, from outside its tree (as its tests' child processes may; inside it, the working directory alone
    would decide)."""
    done = subprocess.run([sys.executable, "-c", "import gemma3n_gguf; print(gemma3n_gguf.__file__)"],
                          env=suite_env(tree, None), cwd=tree.parent, capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve().is_relative_to(tree.resolve())


if __name__ == "__main__":
    main()
