"""The CI-time section: the baseline commit's suite, the same tests on the current tree, the whole suite."""

from __future__ import annotations

from renderers.cells import by_role, median_wall, row, table

LABELS = {
    "baseline": "the baseline's suite on its own code, as its CI ran it (one process)",
    "same_tests": "the same tests on the current code, as CI runs them now (both cores)",
    "full_suite": "the current suite, whole",
}


def render_ci_time(results: dict) -> list[str]:
    checks = results["checks"]
    rows = []
    for role in LABELS:
        runs = by_role(results, role)
        if runs:
            rows.append(row(f"`{runs[0]['tool']}`", runs).rstrip(" |") + f" | {runs[0]['tests']} |")
    header, rule, *body = table(rows)
    lines = [header + " tests |", rule + "---:|", *body, ""]
    lines += [f"- `pytest {role}`: {label}." for role, label in LABELS.items()]
    lines += ["", "A suite starts hundreds of short-lived processes: its peak RSS column adds up the high-water "
              "marks of all of them over the whole run, an upper bound that says little; anonymous and "
              "file-backed are sampled sums over the processes alive at one time."]
    then, now = median_wall(by_role(results, "baseline")), median_wall(by_role(results, "same_tests"))
    if then is not None and now is not None:
        ci = checks.get("baseline_ci_seconds")
        ci_line = f"; CI's own figure for that suite was {ci} s (from the issue tracker, not measured here)" if ci else ""
        lines += ["", f"The {checks['baseline_tests']} tests of `{checks['baseline_commit'][:7]}`: {then:.0f} s then, "
                  f"{now:.0f} s now on this machine (median){ci_line}. Same tests: "
                  + ("yes" if checks["same_tests_ran_the_baseline_tests"] else "NO")
                  + "; every run passed: " + ("yes." if checks["all_passed"] else "NO.")]
    return lines
