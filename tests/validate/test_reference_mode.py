"""``--reference-mode auto|memory|streamed``: the choice, the report, and the same numbers either way."""

from __future__ import annotations

import json
import math

import pytest
from safetensors import safe_open

from cli_helpers import run_cli
from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.reference.mode import HEADROOM_BYTES, in_memory_bytes, resolve_reference_mode

pytestmark = pytest.mark.slow

CHUNKS = 2


def test_in_memory_estimate_is_every_tensor_at_fp32(tiny_text_checkpoint):
    elements = 0
    for shard in tiny_text_checkpoint.glob("*.safetensors"):
        with safe_open(shard, "np") as tensors:
            elements += sum(math.prod(tensors.get_slice(name).get_shape()) for name in tensors.keys())
    assert in_memory_bytes(tiny_text_checkpoint) == 4 * elements


def test_auto_streams_only_what_does_not_fit(tiny_text_checkpoint):
    needed = in_memory_bytes(tiny_text_checkpoint)
    roomy = resolve_reference_mode("auto", tiny_text_checkpoint, available_bytes=2 * needed + HEADROOM_BYTES)
    tight = resolve_reference_mode("auto", tiny_text_checkpoint, available_bytes=needed + HEADROOM_BYTES)
    assert (roomy.mode, tight.mode) == ("memory", "streamed")
    forced = resolve_reference_mode("streamed", tiny_text_checkpoint, available_bytes=100 * needed)
    assert forced.mode == "streamed" and "requested" in forced.describe()
    with pytest.raises(ValidationError, match="--reference-mode"):
        resolve_reference_mode("disk", tiny_text_checkpoint)


def _validate(capsys, checkpoint, model, cache, mode, *extra):
    return run_cli(capsys, "validate", model, "--reference", checkpoint, "--chunks", CHUNKS,
                   "--cache-dir", cache, "--reference-mode", mode, *extra)


def test_validate_reports_the_mode_and_equal_numbers(capsys, tmp_path, tiny_text_checkpoint, tiny_text_quant):
    model = tiny_text_quant("Q8_0")
    reports = {}
    for mode in ("memory", "streamed"):
        run = _validate(capsys, tiny_text_checkpoint, model, tmp_path / mode, mode, "--json")
        assert run.code == 0, run.err
        reports[mode] = json.loads(run.out)
    for mode, report in reports.items():
        assert report["reference"]["mode"] == mode and report["reference"]["cached"] is False
        assert report["reference"]["peak_rss_bytes"] > 0
    memory, streamed = (reports[m]["kld"] for m in ("memory", "streamed"))
    assert streamed["kld_mean"]["value"] == pytest.approx(memory["kld_mean"]["value"], rel=1e-6)
    assert streamed["same_top1"]["value"] == memory["same_top1"]["value"]
    table = _validate(capsys, tiny_text_checkpoint, model, tmp_path / "streamed", "streamed")
    assert table.code == 0 and "cache" in table.out  # the streamed pass filled the cache
    fresh = _validate(capsys, tiny_text_checkpoint, model, tmp_path / "fresh", "streamed")
    assert fresh.code == 0 and "computed, streamed, peak" in " ".join(fresh.out.split())


def test_unknown_mode_is_one_error(capsys, tmp_path, tiny_text_checkpoint, tiny_text_quant):
    run = _validate(capsys, tiny_text_checkpoint, tiny_text_quant("Q8_0"), tmp_path, "disk")
    assert run.code == 1 and "Traceback" not in run.err
    assert "--reference-mode 'disk'" in " ".join(run.err.split())


def test_check_and_sweep_run_streamed(capsys, tmp_path, tiny_text_checkpoint, tiny_text_quant):
    baseline = tmp_path / "baseline.json"
    run = run_cli(capsys, "check", tiny_text_quant("Q8_0"), "--reference", tiny_text_checkpoint,
                  "--write-baseline", baseline, "--chunks", "1", "--cache-dir", tmp_path / "cache",
                  "--reference-mode", "streamed")
    assert run.code == 0, run.err
    run = run_cli(capsys, "sweep", tiny_text_checkpoint, "--schemes", "Q8_0,Q4_K_M", "-o", tmp_path / "sweep",
                  "--chunks", "1", "--cache-dir", tmp_path / "sweep-cache", "--reference-mode", "streamed", "--json")
    assert run.code == 0, run.err
    result = json.loads(run.out)
    assert result["reference_runs"] == 1
