"""The CI-time section: the baseline commit's suite, the same tests on the current tree, the whole suite."""

from __future__ import annotations

from renderers.cells import by_role, median_wall, row, table

LABELS = {
    "baseline": "the baseline's suite on the baseline's code, under its own settings: one process",
    "same_tests": "the same tests on the current code, as CI runs them now: two pytest-xdist workers",
    "full_suite": "the current suite, whole",
}


def render_ci_time(results: dict) -> list[str]:
    rows = []
    for role in LABELS:
        runs = by_role(results, role)
        if runs:
            cells = row(f"`{runs[0]['tool']}`", runs).strip("| ").split(" | ")
            cells[3] = "-"  # see the note below the table
            rows.append("| " + " | ".join([*cells, str(runs[0]["tests"])]) + " |")
    header, rule, *body = table(rows)
    lines = [header + " tests |", rule + "---:|", *body, ""]
    lines += [f"- `pytest {role}`: {label}." for role, label in LABELS.items()]
    lines += ["", "A suite starts hundreds of short-lived processes, so no peak RSS is shown: the sum of their "
              "high-water marks over the whole run says nothing of the memory it needs; anonymous and "
              "file-backed are sampled sums over the processes alive at one time.", "", verdict(results)]
    return lines


def verdict(results: dict) -> str:
    checks = results["checks"]
    medians = {role: median_wall(by_role(results, role)) for role in LABELS}
    line = (f"Same tests in both runs: {'yes' if checks['same_tests_ran_the_baseline_tests'] else 'NO'}; "
            f"every run passed with no skip: {'yes' if checks['all_passed'] else 'NO'}.")
    if None in medians.values():
        return line
    full = by_role(results, "full_suite")[0]["tests"]
    line += (f" The {checks['baseline_tests']} tests of `{checks['baseline_commit'][:7]}` took "
             f"{medians['baseline']:.0f} s on their own code and {medians['same_tests']:.0f} s on today's "
             f"(median, this machine; the difference is mostly the second core); today's whole suite, "
             f"{full} tests, took {medians['full_suite']:.0f} s.")
    if checks.get("baseline_ci_seconds"):
        line += (f" CI's own figure for the baseline suite was {checks['baseline_ci_seconds']} s (from the issue "
                 "tracker, not measured here).")
    return line
