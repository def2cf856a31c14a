"""The gate's logic without models: baseline files, limits, verdicts, JUnit and Markdown."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from junitparser import Failure, JUnitXml

from gemma3n_gguf.core.errors import BaselineError
from gemma3n_gguf.validate.gate.baseline import (
    CHECKS,
    FORMAT,
    VERSION,
    Protocol,
    evaluate,
    load_baseline,
    write_baseline,
)
from gemma3n_gguf.validate.gate.reports import junit_xml, markdown_summary, write_junit
from gemma3n_gguf.validate.metrics.kld import KLDAccumulator
from gemma3n_gguf.validate.report import ConfidentTop1, ReferencePass, ValidationReport
from gemma3n_gguf.validate.tokens import TokenizerAgreement

PROTOCOL = Protocol(512, 4, False, "default", "ab" * 32, "cd" * 32)


def make_report(noise: float, seed: int = 0, tokenizer_agrees: bool = True) -> ValidationReport:
    """A report of a candidate whose logits are the reference's plus N(0, noise^2) noise."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 3, (400, 64))
    candidate = reference + rng.normal(0, noise, reference.shape)
    targets = rng.integers(0, 64, 400)
    kld = KLDAccumulator()
    kld.add(reference, candidate, targets)
    agreement = TokenizerAgreement("reference", tokenizer_agrees, 2000, 2000, None if tokenizer_agrees else 7)
    return ValidationReport(
        model="/m/model-Q4_K_M.gguf", model_bytes=1000, bits_per_weight=4.8,
        reference=ReferencePass("/ref", "cd" * 32, "/cache/x.g3nref", True, 0.1), text_name="default",
        text_sha256="ab" * 32, n_text_tokens=2000, tokenizer=agreement, n_ctx=512, n_windows=4,
        n_vocab_compared=64, vocab_aligned=False, kld=kld.finish(),
        confident_top1=ConfidentTop1(0.97, 300, 0.1), candidate_seconds=1.0,
    )


def _baseline_file(tmp_path, report=None):
    path = tmp_path / "baseline.json"
    write_baseline(path, report or make_report(0.1), PROTOCOL)
    return path


def test_baseline_round_trip(tmp_path):
    report = make_report(0.1)
    path = _baseline_file(tmp_path, report)
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == (FORMAT, VERSION)
    assert set(document["checks"]) == {"kld_mean", "kld_p99", "same_top1", "ppl_ratio", "tokenizer_match"}
    assert document["checks"]["kld_mean"]["measured"] == report.kld.kld_mean.value
    baseline = load_baseline(path)
    assert baseline.protocol == PROTOCOL
    assert {limit.name for limit in baseline.limits} == set(document["checks"])


def test_the_same_numbers_pass(tmp_path):
    result = evaluate(make_report(0.1), load_baseline(_baseline_file(tmp_path)))
    assert result.passed and not result.failures


def test_a_better_candidate_passes(tmp_path):
    result = evaluate(make_report(0.02), load_baseline(_baseline_file(tmp_path)))
    assert result.passed, [o.verdict for o in result.failures]


def test_a_worse_candidate_fails_on_divergence(tmp_path):
    result = evaluate(make_report(0.5), load_baseline(_baseline_file(tmp_path)))
    failed = {o.name for o in result.failures}
    assert {"kld_mean", "kld_p99", "same_top1"} <= failed
    assert all("REGRESSION" in o.verdict for o in result.failures)


def test_a_tokenizer_change_fails(tmp_path):
    result = evaluate(make_report(0.1, tokenizer_agrees=False), load_baseline(_baseline_file(tmp_path)))
    assert [o.name for o in result.failures] == ["tokenizer_match"]


def test_hand_edited_limits_are_honoured(tmp_path):
    path = _baseline_file(tmp_path)
    document = json.loads(path.read_text())
    document["checks"]["kld_mean"]["max"] = 1e-9
    document["checks"]["confident_top1"] = {"measured": 0.99, "min": 0.98}
    path.write_text(json.dumps(document))
    result = evaluate(make_report(0.1), load_baseline(path))
    assert {o.name for o in result.failures} == {"kld_mean", "confident_top1"}


def test_unmeasured_check_fails(tmp_path):
    path = _baseline_file(tmp_path)
    document = json.loads(path.read_text())
    document["checks"]["image_embedding_cosine"] = {"measured": 0.9999, "min": 0.999}
    path.write_text(json.dumps(document))
    baseline = load_baseline(path)
    assert baseline.needs("image") and not baseline.needs("audio")
    outcome = next(o for o in evaluate(make_report(0.1), baseline).outcomes if o.name == "image_embedding_cosine")
    assert not outcome.passed and "not measured" in outcome.verdict


@pytest.mark.parametrize("edit, message", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: {**d, "format": "other"}, "not a gemma3n-gguf baseline"),
    (lambda d: {**d, "version": 99}, "version 99"),
    (lambda d: {**d, "checks": {}}, "non-empty"),
    (lambda d: {**d, "checks": {"kld_mean": {"measured": 0.1, "min": 0.0}}}, "needs \"measured\" and \"max\""),
    (lambda d: {**d, "checks": {"bleu": {"measured": 1, "min": 1}}}, "unknown check 'bleu'"),
    (lambda d: {**d, "checks": {"kld_mean": {"measured": "x", "max": 1}}}, "non-numeric"),
    (lambda d: {k: v for k, v in d.items() if k != "protocol"}, "\"protocol\" is incomplete"),
])
def test_malformed_baselines_are_usage_errors(tmp_path, edit, message):
    path = _baseline_file(tmp_path)
    edited = edit(json.loads(path.read_text()))
    path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(BaselineError, match=message):
        load_baseline(path)


@pytest.mark.parametrize("n_ctx", ["1e400", "NaN", "\"512x\""])
def test_a_non_integer_context_is_a_baseline_error(tmp_path, n_ctx):
    path = _baseline_file(tmp_path)
    text = path.read_text()
    assert '"n_ctx": 512' in text
    path.write_text(text.replace('"n_ctx": 512', f'"n_ctx": {n_ctx}'))
    with pytest.raises(BaselineError, match="\"protocol\" is incomplete or malformed"):
        load_baseline(path)


def test_missing_baseline_names_the_fix(tmp_path):
    with pytest.raises(BaselineError, match="--write-baseline"):
        load_baseline(tmp_path / "absent.json")


def test_protocol_differences_are_listed():
    other = Protocol(256, 4, False, "mine.txt", "ef" * 32, "cd" * 32)
    differences = PROTOCOL.differences(other)
    assert len(differences) == 2
    assert "n_ctx is 256 here, 512 in the baseline" in differences[0] and "text differs" in differences[1]
    assert PROTOCOL.differences(PROTOCOL) == []


def test_junit_xml_parses_with_one_case_per_check(tmp_path):
    result = evaluate(make_report(0.5), load_baseline(_baseline_file(tmp_path)))
    path = tmp_path / "gate.xml"
    write_junit(path, result)
    suites = JUnitXml.fromfile(str(path))
    cases = [case for suite in suites for case in suite]
    assert sorted(case.name for case in cases) == sorted(o.name for o in result.outcomes)
    failed = {case.name for case in cases if any(isinstance(r, Failure) for r in case.result)}
    assert failed == {o.name for o in result.failures} and failed
    assert junit_xml(result).startswith('<?xml version="1.0"')


def test_markdown_summary_states_the_verdict(tmp_path):
    baseline = load_baseline(_baseline_file(tmp_path))
    good, bad = evaluate(make_report(0.1), baseline), evaluate(make_report(0.5), baseline)
    assert "passed" in markdown_summary(good).splitlines()[0]
    text = markdown_summary(bad)
    assert "regression" in text.splitlines()[0] and text.count("**REGRESSION**") == len(bad.failures)
    assert "| `kld_mean` |" in text


def test_every_check_reads_a_report():
    report = make_report(0.1)
    for name, spec in CHECKS.items():
        value, uncertainty = spec.read(report)
        assert value is None or math.isfinite(value), name
        assert uncertainty >= 0


def test_a_limit_with_unused_keys_is_refused(tmp_path):
    from pathlib import Path

    path = tmp_path / "b.json"
    good = json.loads((Path(__file__).parent / "baselines" / "tiny-text-Q8_0.json").read_text())
    name = next(iter(good["checks"]))
    good["checks"][name]["min_and_max_typo"] = 1.0
    path.write_text(json.dumps(good))
    with pytest.raises(BaselineError, match="keys it does not use: min_and_max_typo"):
        load_baseline(path)
