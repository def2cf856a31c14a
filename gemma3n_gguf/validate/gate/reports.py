"""The gate's result for CI systems: JUnit XML (one test case per check) and a Markdown summary.

The Markdown is meant for ``$GITHUB_STEP_SUMMARY``; the JUnit file for any CI's test report
view. Both are written atomically.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.validate.gate.baseline import GateResult

SUITE_NAME = "gemma3n-gguf check"


def junit_xml(result: GateResult) -> str:
    """A JUnit XML document: one ``testcase`` per check, ``failure`` on a regression."""
    failures = len(result.failures)
    report = result.report
    seconds = report.reference.seconds + report.candidate_seconds
    suites = ET.Element("testsuites", name=SUITE_NAME, tests=str(len(result.outcomes)),
                        failures=str(failures), errors="0", time=f"{seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=SUITE_NAME, tests=str(len(result.outcomes)),
                          failures=str(failures), errors="0", skipped="0", time=f"{seconds:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(result).items():
        ET.SubElement(properties, "property", name=name, value=str(value))
    classname = f"gemma3n_gguf.check.{Path(result.model).stem}"
    for outcome in result.outcomes:
        case = ET.SubElement(suite, "testcase", classname=classname, name=outcome.name, time="0")
        if not outcome.passed:
            failure = ET.SubElement(case, "failure", message=outcome.verdict, type="regression")
            failure.text = f"{outcome.description}\n{outcome.verdict}\nbaseline file: {result.baseline}"
        else:
            ET.SubElement(case, "system-out").text = outcome.verdict
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def markdown_summary(result: GateResult) -> str:
    """A GitHub-flavoured Markdown summary: verdict, the checks table, the protocol."""
    report = result.report
    verdict = "✅ passed" if result.passed else f"❌ {len(result.failures)} regression(s)"
    lines = [
        f"### gemma3n-gguf check: `{Path(result.model).name}` {verdict}",
        "",
        "| check | measured | ± | baseline | limit | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for o in result.outcomes:
        measured = "not measured" if o.measured is None else f"{o.measured:.6g}"
        relation = "≤" if o.direction == "max" else "≥"
        status = "ok" if o.passed else "**REGRESSION**"
        spread = f"{o.uncertainty:.2g}" if o.uncertainty else "–"
        lines.append(f"| `{o.name}` | {measured} | {spread} | {o.baseline:.6g} | "
                     f"{relation} {o.bound:.6g} | {status} |")
    lines += [
        "",
        f"{report.kld.n_tokens} scored tokens in {report.n_windows} windows of {report.n_ctx} "
        f"({report.text_name}); reference `{report.reference.directory}` "
        f"({'from cache' if report.reference.cached else 'computed'}); baseline `{result.baseline}`.",
    ]
    lines += [f"> warning: {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def write_junit(path: str | os.PathLike[str], result: GateResult) -> None:
    write_text_atomically(path, junit_xml(result))


def write_summary(path: str | os.PathLike[str], result: GateResult) -> None:
    """Write the summary, replacing ``path`` (GitHub gives each step its own summary file)."""
    write_text_atomically(path, markdown_summary(result))


def _properties(result: GateResult) -> dict[str, object]:
    report = result.report
    return {
        "model": result.model,
        "baseline": result.baseline,
        "reference": report.reference.directory,
        "text": report.text_name,
        "n_ctx": report.n_ctx,
        "scored_tokens": report.kld.n_tokens,
        "kld_mean": report.kld.kld_mean.value,
        "same_top1": report.kld.same_top1.value,
        "ppl_ratio": report.kld.ppl_ratio.value,
    }
