"""``gemma3n-gguf check``: a rebuilt good quant passes, a corrupted one fails, misuse exits 2.

Quants come from the project's k-quant engine (see conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from cli_helpers import run_cli

from .conftest import PIPELINE_CHUNKS, corrupt_copy, quantize_checkpoint

pytestmark = pytest.mark.slow

COMMITTED_BASELINES = Path(__file__).parent / "baselines"


@pytest.fixture(scope="module")
def baseline(tiny_text_quant, tiny_text_checkpoint, shared_reference_cache, tmp_path_factory):
    """A baseline recorded from tiny-text Q8_0 (by the function the CLI calls; capsys is per test)."""
    from gemma3n_gguf.validate.gate.ci import record_baseline

    path = tmp_path_factory.mktemp("gate") / "baseline.json"
    record_baseline(tiny_text_quant("Q8_0"), tiny_text_checkpoint, path, chunks=PIPELINE_CHUNKS,
                    cache_dir=shared_reference_cache)
    return path


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def _check(capsys, model, checkpoint, cache, *args):
    return run_cli(capsys, "check", model, "--reference", checkpoint, "--cache-dir", cache, *args)


def test_write_baseline_through_the_cli(capsys, tmp_path, tiny_text_quant, tiny_text_checkpoint,
                                        shared_reference_cache):
    path = tmp_path / "b.json"
    run = _check(capsys, tiny_text_quant("Q8_0"), tiny_text_checkpoint, shared_reference_cache,
                 "--write-baseline", path, "--chunks", PIPELINE_CHUNKS, "--json")
    assert run.code == 0, run.err
    written = json.loads(path.read_text())
    assert json.loads(run.out) == written
    assert written["protocol"]["chunks"] == PIPELINE_CHUNKS and written["protocol"]["n_ctx"] == 512
    checks = written["checks"]
    assert checks["kld_mean"]["max"] > checks["kld_mean"]["measured"] > 0
    assert checks["same_top1"]["min"] < checks["same_top1"]["measured"] <= 1


def test_a_rebuilt_good_quant_passes(capsys, tmp_path, baseline, tiny_text_checkpoint, shared_reference_cache):
    rebuilt = quantize_checkpoint(tiny_text_checkpoint, tmp_path / "rebuilt-Q8_0.gguf", "Q8_0")
    junit, summary = tmp_path / "gate.xml", tmp_path / "summary.md"
    run = _check(capsys, rebuilt, tiny_text_checkpoint, shared_reference_cache, "--baseline", baseline,
                 "--junit", junit, "--summary", summary)
    assert run.code == 0, (run.out, run.err)
    assert "passed" in run.out
    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    assert len(cases) == len(json.loads(baseline.read_text())["checks"])
    assert all(case.is_passed for case in cases)
    assert "✅ passed" in summary.read_text()


def test_a_corrupted_quant_fails(capsys, tmp_path, baseline, tiny_text_quant, tiny_text_checkpoint,
                                 shared_reference_cache):
    broken = corrupt_copy(tiny_text_quant("Q8_0"), tmp_path / "broken-Q8_0.gguf", "blk.12.ffn_gate.weight")
    junit, summary = tmp_path / "gate.xml", tmp_path / "summary.md"
    run = _check(capsys, broken, tiny_text_checkpoint, shared_reference_cache, "--baseline", baseline,
                 "--junit", junit, "--summary", summary, "--json")
    assert run.code == 1, run.err
    result = json.loads(run.out)
    assert result["passed"] is False
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert "kld_mean" in failed
    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    junit_failed = {case.name for case in cases if any(isinstance(r, Failure) for r in case.result)}
    assert junit_failed == failed
    assert "**REGRESSION**" in summary.read_text()


@pytest.mark.parametrize("scheme", ["Q8_0", "Q4_K_M"])
def test_project_quants_pass_their_committed_baselines(capsys, tmp_path, scheme, tiny_text_checkpoint,
                                                       shared_reference_cache):
    """The project's own gate: today's converter and quantizer against the numbers in the repository."""
    model = quantize_checkpoint(tiny_text_checkpoint, tmp_path / f"tiny-text-{scheme}.gguf", scheme)
    run = _check(capsys, model, tiny_text_checkpoint, shared_reference_cache,
                 "--baseline", COMMITTED_BASELINES / f"tiny-text-{scheme}.json")
    assert run.code == 0, (run.out, run.err)


def test_missing_baseline_is_a_usage_error(capsys, tmp_path, tiny_text_f32_gguf, tiny_text_checkpoint):
    run = run_cli(capsys, "check", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint,
                  "--baseline", tmp_path / "absent.json")
    assert run.code == 2 and "absent.json does not exist" in _flat(run.err)


def test_malformed_baseline_is_a_usage_error(capsys, tmp_path, tiny_text_f32_gguf, tiny_text_checkpoint):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"format\": \"gemma3n-gguf-baseline\", \"version\": 1")
    run = run_cli(capsys, "check", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint, "--baseline", bad)
    assert run.code == 2 and "not valid JSON" in _flat(run.err)


@pytest.mark.parametrize("options", [(), ("--baseline", "b.json", "--write-baseline", "c.json")],
                         ids=["neither", "both"])
def test_exactly_one_baseline_option(capsys, tmp_path, options, tiny_text_f32_gguf, tiny_text_checkpoint):
    run = run_cli(capsys, "check", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint, *options)
    assert run.code == 2 and "exactly one of --baseline" in _flat(run.err)


def test_another_protocol_is_a_usage_error(capsys, baseline, tiny_text_f32_gguf, tiny_text_checkpoint):
    run = run_cli(capsys, "check", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint,
                  "--baseline", baseline, "--ctx", 256)
    assert run.code == 2
    assert "n_ctx is 256 here, 512 in the baseline" in _flat(run.err)


def test_missing_reference_option_is_a_usage_error(capsys, baseline, tiny_text_f32_gguf):
    run = run_cli(capsys, "check", tiny_text_f32_gguf, "--baseline", baseline)
    assert run.code == 2 and "--reference" in run.err


def test_bad_model_is_an_error_not_a_usage_error(capsys, baseline, tiny_llama_gguf, tiny_text_checkpoint,
                                                 shared_reference_cache):
    run = _check(capsys, tiny_llama_gguf.path, tiny_text_checkpoint, shared_reference_cache,
                 "--baseline", baseline)
    assert run.code == 1 and "not gemma3n" in _flat(run.err)
