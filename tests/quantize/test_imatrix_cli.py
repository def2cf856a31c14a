"""``gemma3n-gguf imatrix``: llama.cpp's format, read back by us and by ggml, used by llama_model_quantize."""

from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np
import pytest
from gguf import GGUFReader

from cli_helpers import run_cli
from gemma3n_gguf.quantize.imatrix import read_imatrix

from .conftest import IMATRIX_CHUNKS, IMATRIX_CTX
from .llama_reference import llama_quantize, read_imatrix_with_ggml

pytestmark = pytest.mark.slow

KV_FROM_START = 20  # llama.cpp's n_layer_kv_from_start for gemma3n


@pytest.fixture(scope="module")
def cli_imatrix(tiny256_checkpoint, calibration_text, tmp_path_factory):
    """The command's output file and its --json summary (run once for the module; capsys is per test)."""
    out = tmp_path_factory.mktemp("imatrix-cli") / "imatrix.gguf"
    argv, sys.argv = sys.argv, ["gemma3n-gguf", "imatrix", str(tiny256_checkpoint), "--text", str(calibration_text),
                                "-o", str(out), "--ctx", str(IMATRIX_CTX), "--chunks", str(IMATRIX_CHUNKS), "--json"]
    stdout = io.StringIO()
    try:
        from gemma3n_gguf.cli import main

        with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    assert exit_info.value.code in (0, None)
    return out, json.loads(stdout.getvalue())


def _expected_entries(f32_gguf) -> set[str]:
    """Every blk.* matrix llama.cpp multiplies with: all 2-D blk tensors but the KV-shared K/V."""
    names = set()
    for t in GGUFReader(f32_gguf).tensors:
        parts = t.name.split(".")
        if parts[0] != "blk" or len([n for n in t.shape if n > 1]) < 2:
            continue
        if int(parts[1]) >= KV_FROM_START and parts[2] in ("attn_k", "attn_v"):
            continue
        names.add(t.name)
    return names


def test_entries_and_counts_are_llama_imatrix_s(cli_imatrix, tiny256_gguf):
    """The entries llama-imatrix would record, readable by ggml's own GGUF parser."""
    path, summary = cli_imatrix
    ours = read_imatrix(path)
    theirs = read_imatrix_with_ggml(path)
    expected = _expected_entries(tiny256_gguf("f32"))
    assert set(ours.entries) == set(theirs.values) == expected
    assert summary["no_entries_kv_shared"] == ["blk.20.attn_k.weight", "blk.20.attn_v.weight"]
    tokens = IMATRIX_CTX * IMATRIX_CHUNKS
    for name, (sums, counts) in theirs.raw.items():
        # the AltUp router runs twice per layer (predict and correct), as in llama.cpp's graph
        assert list(counts) == [2 * tokens if "altup_router" in name else tokens], name
        assert np.all(sums >= 0) and sums.any() and np.all(np.isfinite(sums)), name  # ffn_down: sparse inputs
        assert np.array_equal(ours.entries[name].sums.reshape(-1), sums)
    assert theirs.chunk_size == IMATRIX_CTX and theirs.chunk_count == 2 * IMATRIX_CHUNKS
    assert theirs.datasets == [summary["dataset"]] and summary["dataset"].endswith("calibration.txt")


def test_weights_sharing_an_input_get_the_same_sums(cli_imatrix):
    """q/k/v read the same normed hidden state, gate/up the same FFN input: a swapped layer or
    weight would break these equalities."""
    values = read_imatrix_with_ggml(cli_imatrix[0]).raw
    for layer in range(KV_FROM_START):
        q = values[f"blk.{layer}.attn_q.weight"][0]
        assert np.allclose(values[f"blk.{layer}.attn_k.weight"][0], q, rtol=1e-6)
        assert np.allclose(values[f"blk.{layer}.attn_v.weight"][0], q, rtol=1e-6)
        assert np.allclose(values[f"blk.{layer}.laurel_l.weight"][0], q, rtol=1e-6)
        assert np.allclose(values[f"blk.{layer}.ffn_up.weight"][0], values[f"blk.{layer}.ffn_gate.weight"][0], rtol=1e-6)
    assert not np.allclose(values["blk.0.attn_q.weight"][0], values["blk.1.attn_q.weight"][0])


def test_cli_imatrix_drives_llama_quantize_like_ours(cli_imatrix, tiny256_checkpoint, tiny256_gguf, tmp_path,
                                                     capsys, monkeypatch):
    path, _ = cli_imatrix
    monkeypatch.chdir(path.parent)
    run = run_cli(capsys, "quantize", tiny256_checkpoint, "--imatrix", path.name, "-o", tmp_path / "ours.gguf")
    assert run.code == 0, run
    assert "K/V tensors of KV-shared layers" in " ".join(run.out.split())
    assert llama_quantize(tiny256_gguf("f32"), tmp_path / "theirs.gguf", "Q4_K_M", path.name) == 0
    assert (tmp_path / "ours.gguf").read_bytes() == (tmp_path / "theirs.gguf").read_bytes()
    without = run_cli(capsys, "quantize", tiny256_checkpoint, "-o", tmp_path / "plain.gguf")
    assert without.code == 0
    assert (tmp_path / "plain.gguf").read_bytes() != (tmp_path / "ours.gguf").read_bytes()


def test_text_shorter_than_one_chunk(tiny256_checkpoint, tmp_path, capsys):
    text = tmp_path / "short.txt"
    text.write_text("the quick brown fox", encoding="utf-8")
    dest = tmp_path / "i.gguf"
    run = run_cli(capsys, "imatrix", tiny256_checkpoint, "--text", text, "-o", dest, "--ctx", "64")
    assert run.code == 1 and run.err.startswith("error:") and "--ctx 64" in run.err, run
    assert not dest.exists()
