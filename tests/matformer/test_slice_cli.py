"""``gemma3n-gguf slice``: the table, bad specs refused in one line with nothing written, GGUF and
checkpoint outputs, --scheme in the same pass, --budget, inspect's runtime keys, validate."""

from __future__ import annotations

import json

import pytest
from gguf import GGUFReader

from cli_helpers import run_cli

pytestmark = pytest.mark.slow


def _one_error(run, fragment: str) -> None:
    assert run.code == 1, (run.out, run.err)
    assert run.err.count("error:") == 1 and "Traceback" not in run.err, run.err
    assert fragment in " ".join(run.err.split())


def test_list_prints_the_16_official_configurations(capsys):
    run = run_cli(capsys, "slice", "--list", "--json")
    rows = json.loads(run.out)
    assert run.code == 0 and len(rows) == 16
    e2b = next(r for r in rows if r["config"] == "e2b")
    assert (e2b["layers"], e2b["ffn_widths"], e2b["skipped"], e2b["mmlu"]) == (30, "8192*30", [20, 21, 22, 23, 24], 50.9)


@pytest.mark.parametrize("args, fragment", [
    (["--ffn-widths", "1024*34"], "34 FFN widths given for 35 kept layers"),
    (["--ffn-widths", "1024*34,4096"], "FFN width 4096 at kept layer 34 exceeds the checkpoint's 2048"),
    (["--ffn-widths", "1024*30", "--skip-layers", "17-21"], "cannot skip layer(s) [18, 19]"),
    (["--ffn-widths", "1024*34,0"], "FFN width 0 at kept layer 34 is not positive"),
    (["--config", "e3b"], "unknown slicing configuration 'e3b'"),
])
def test_impossible_slices_are_refused_and_nothing_is_written(capsys, tiny_e4b, tmp_path, args, fragment):
    for out in (tmp_path / "x.gguf", tmp_path / "x-hf"):
        _one_error(run_cli(capsys, "slice", tiny_e4b, *args, "-o", out), fragment)
    assert list(tmp_path.iterdir()) == []


def test_quantized_in_the_same_pass_with_its_metadata(capsys, tiny_e4b, tmp_path):
    out = tmp_path / "e2.54b-Q4_K_M.gguf"
    run = run_cli(capsys, "slice", tiny_e4b, "-c", "e2.54b-layer", "-s", "Q4_K_M", "-o", out, "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["runtimes"]["llama.cpp"].startswith("no: per-layer FFN widths differ")
    assert report["runtimes"]["llama.cpp+ffn-patch"] == "yes"
    reader = GGUFReader(out)
    assert reader.fields["general.file_type"].parts[-1][0] == 15  # MOSTLY_Q4_K_M
    widths = [int(reader.fields["gemma3n.feed_forward_length"].parts[i][0])
              for i in reader.fields["gemma3n.feed_forward_length"].data]
    assert widths == [1024] * 4 + [2048] + [1024] * 15 + [2048] * 5 + [1024] * 10
    assert int(next(t for t in reader.tensors if t.name == "blk.4.ffn_gate.weight").shape[1]) == 2048
    shown = run_cli(capsys, "inspect", out)
    assert shown.code == 0
    flat = " ".join(shown.out.split())
    assert "gemma3n_gguf.slice.config │ e2.54b-layer" in flat and "no: per-layer FFN widths differ" in flat
    assert "llama.cpp: no (per-layer FFN widths differ" in flat and "patched runtime: yes)" in flat


def test_budget_picks_the_best_configuration_that_fits(capsys, tiny_e4b, tmp_path):
    sizes = json.loads(run_cli(capsys, "slice", tiny_e4b, "-c", "e2b", "--dry-run", "--json").out)["bytes"]
    main = json.loads(run_cli(capsys, "slice", tiny_e4b, "-c", "main", "--dry-run", "--json").out)["bytes"]
    run = run_cli(capsys, "slice", tiny_e4b, "--budget", str(sizes), "-o", tmp_path / "b.gguf", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["config"] == "e2b"  # the only one that fits exactly the E2B size
    run = run_cli(capsys, "slice", tiny_e4b, "--budget", str(main), "--dry-run", "--json")
    assert json.loads(run.out)["config"] == "e3.59b-layer"  # best MMLU (63.4, tied): the smaller file
    _one_error(run_cli(capsys, "slice", tiny_e4b, "--budget", "1MB", "-o", tmp_path / "c.gguf"), "no official configuration fits")


def test_validate_accepts_a_sliced_gguf_with_its_sliced_checkpoint(capsys, official_slices, tmp_path):
    hf_dir, gguf, _ = official_slices("e2b")
    run = run_cli(capsys, "validate", gguf, "--reference", hf_dir, "--chunks", "1", "--ctx", "128",
                  "--cache-dir", tmp_path / "cache", "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["kld"]["kld_mean"]["value"] < 1e-4  # f32 against its own reference


def test_inspect_gives_runtime_verdicts_for_any_gemma3n_text_gguf(capsys, tiny_e4b, tmp_path):
    uniform = tmp_path / "uniform.gguf"
    assert run_cli(capsys, "convert", tiny_e4b, "--outtype", "f16", "-o", uniform).code == 0
    shown = run_cli(capsys, "inspect", uniform)
    assert shown.code == 0 and "llama.cpp: runs" in shown.out
    assert "gemma3n_gguf.runtime" not in shown.out  # from the metadata llama.cpp reads, not our keys
    skipped = tmp_path / "skip-early.gguf"
    assert run_cli(capsys, "slice", tiny_e4b, "--ffn-widths", "2048*34", "--skip-layers", "3", "-o", skipped).code == 0
    flat = " ".join(run_cli(capsys, "inspect", skipped).out.split())
    assert "llama.cpp: no (KV sharing starts at layer 19" in flat and "patched runtime: no:" in flat
    report = json.loads(run_cli(capsys, "inspect", uniform, "--json").out)
    assert report["runtimes"] == {"llama.cpp": "yes", "llama.cpp+ffn-patch": "yes"}
