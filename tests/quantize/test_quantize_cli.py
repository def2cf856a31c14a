"""``gemma3n-gguf quantize``: bad input gives one clear line, exit 1 and no file; plans; llama.cpp runs the output."""

from __future__ import annotations

import json
import shutil
import struct

import llama_cpp
import numpy as np
import pytest

from cli_helpers import run_cli
from conftest import llama_logits
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.quantize.imatrix import Imatrix, ImatrixEntry, read_imatrix, write_imatrix_gguf

pytestmark = pytest.mark.slow


def _assert_clean_failure(run, dest, *fragments):
    assert run.code == 1, run
    lines = [line for line in run.err.strip().splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in " ".join(run.err.split()), run.err
    assert not dest.exists()
    assert not list(dest.parent.glob(f".{dest.name}*")), "temporary file left behind"


def _imatrix_file(path, entries, datasets=("calibration.txt",)):
    write_imatrix_gguf(path, Imatrix(entries, list(datasets), chunk_count=4, chunk_size=512))
    return path


def test_unknown_scheme(tiny256_checkpoint, tmp_path, capsys):
    dest = tmp_path / "q.gguf"
    run = run_cli(capsys, "quantize", tiny256_checkpoint, "--scheme", "Q9_K", "-o", dest)
    _assert_clean_failure(run, dest, "unknown scheme 'Q9_K'", "Q4_K_M")


@pytest.mark.parametrize(("entries", "fragment"), [
    ({"blk.0.attn_q.weight": ImatrixEntry(np.ones((1, 64), np.float32), np.array([512]))},
     "blk.0.attn_q.weight has 64 values, the tensor needs 256"),
    ({"blk.40.attn_q.weight": ImatrixEntry(np.ones((1, 256), np.float32), np.array([512]))},
     "entries for 1 tensors this model lacks (e.g. blk.40.attn_q.weight)"),
], ids=["narrower-model", "deeper-model"])
def test_imatrix_of_another_model(tiny256_checkpoint, tmp_path, capsys, entries, fragment):
    imatrix = _imatrix_file(tmp_path / "other.gguf", entries)
    dest = tmp_path / "q.gguf"
    run = run_cli(capsys, "quantize", tiny256_checkpoint, "--imatrix", imatrix, "-o", dest)
    _assert_clean_failure(run, dest, "imatrix was computed on another model", fragment)


def test_imatrix_with_nan(tiny256_checkpoint, tiny256_imatrix, tmp_path, capsys):
    good = read_imatrix(tiny256_imatrix)
    good.entries["blk.3.ffn_down.weight"].sums[0, 7] = np.nan
    imatrix = _imatrix_file(tmp_path / "nan.gguf", good.entries)
    dest = tmp_path / "q.gguf"
    run = run_cli(capsys, "quantize", tiny256_checkpoint, "--imatrix", imatrix, "-o", dest)
    _assert_clean_failure(run, dest, "blk.3.ffn_down.weight contains NaN or Inf")


def test_requantize_needs_permission(tiny256_gguf, tmp_path, capsys):
    dest = tmp_path / "q.gguf"
    run = run_cli(capsys, "quantize", tiny256_gguf("q8_0"), "-o", dest)
    _assert_clean_failure(run, dest, "already quantized (Q8_0 tensors", "--allow-requantize")


def test_nan_weight_mid_file_leaves_nothing(tiny256_checkpoint, tmp_path, capsys):
    broken = tmp_path / "ckpt"
    shutil.copytree(tiny256_checkpoint, broken)
    ref = Checkpoint(broken).ref("model.language_model.layers.19.mlp.down_proj.weight")
    with open(ref.file, "r+b") as f:
        f.seek(ref.offset + 4 * 100)
        f.write(struct.pack("<f", float("nan")))
    dest = tmp_path / "out" / "q.gguf"
    run = run_cli(capsys, "quantize", broken, "-o", dest)
    _assert_clean_failure(run, dest, "blk.19.ffn_down.weight contains NaN")


def test_regex_matching_nothing_warns_and_changes_nothing(tiny256_checkpoint, tmp_path, capsys):
    plain = run_cli(capsys, "quantize", tiny256_checkpoint, "-o", tmp_path / "plain.gguf")
    assert plain.code == 0 and "warning" not in plain.err
    run = run_cli(capsys, "quantize", tiny256_checkpoint, "-o", tmp_path / "q.gguf",
                  "--tensor-type", "attn_zz=q8_0", "--tensor-type", "ffn_down=q5_k")
    assert run.code == 0, run
    assert "warning: --tensor-type 'attn_zz' matches no tensor" in run.err
    assert "ffn_down" not in run.err
    dry = json.loads(run_cli(capsys, "quantize", tiny256_checkpoint, "--tensor-type", "attn_zz=q8_0",
                             "--dry-run", "--json").out)
    assert dry["unmatched_patterns"] == ["attn_zz"]
    unchanged = run_cli(capsys, "quantize", tiny256_checkpoint, "-o", tmp_path / "same.gguf", "--tensor-type", "attn_zz=q8_0")
    assert (tmp_path / "same.gguf").read_bytes() == (tmp_path / "plain.gguf").read_bytes(), unchanged


def test_dry_run_writes_nothing_and_shows_the_plan(tiny256_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_cli(capsys, "quantize", tiny256_checkpoint, "--scheme", "Q4_K_M", "--ple-type", "q8_0", "--dry-run", "--json")
    assert run.code == 0, run
    plan = json.loads(run.out)
    groups = {g["group"]: g for g in plan["groups"]}
    assert groups["per_layer_token_embd"]["types"] == {"Q8_0": 1}
    assert groups["ffn_down"]["types"] == {"Q4_K": 11, "Q6_K": 10}  # use_more_bits layers of 21
    assert groups["altup_proj"]["types"] == {"F32": 1}
    assert 0 < plan["ple_share"] < 1 and plan["file_bytes"] > plan["tensor_bytes"]
    table = run_cli(capsys, "quantize", tiny256_checkpoint, "--dry-run")
    assert "per_layer_token_embd" in table.out and "PLE table" in " ".join(table.out.split())
    assert list(tmp_path.iterdir()) == [] and not list(tiny256_checkpoint.glob("*.gguf"))


def test_quantized_file_runs_in_llama_cpp(tiny256_checkpoint, tiny256_gguf, parity_ids, tmp_path, capsys):
    dest = tmp_path / "q4km.gguf"
    assert run_cli(capsys, "quantize", tiny256_checkpoint, "-o", dest).code == 0
    quantized, reference = llama_logits(dest, parity_ids), llama_logits(tiny256_gguf("f32"), parity_ids)
    assert np.corrcoef(quantized.ravel(), reference.ravel())[0, 1] > 0.9
    assert (quantized.argmax(1) == reference.argmax(1)).mean() > 0.4
    llm = llama_cpp.Llama(model_path=str(dest), n_ctx=128, verbose=False)
    try:
        generated = []
        for token in llm.generate(llm.tokenize(b"the quick brown fox"), temp=0.0):
            generated.append(token)
            if len(generated) == 8:
                break
    finally:
        llm.close()
    assert len(generated) == 8 and all(0 <= t < llm.n_vocab() for t in generated)
