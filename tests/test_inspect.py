"""`inspect` on converted files: metadata, type counts, sizes by group, JSON."""

from __future__ import annotations

import json

import pytest
from gguf import GGUFReader

from cli_helpers import run_cli
from gemma3n_gguf.core.errors import GGUFFileError
from gemma3n_gguf.inspection import summarize

pytestmark = pytest.mark.slow


def test_summary_adds_up(tiny_text_gguf_factory):
    path = tiny_text_gguf_factory("q8_0")
    summary = summarize(path)
    reader = GGUFReader(path)
    assert summary.architecture == "gemma3n"
    assert summary.total.tensors == len(reader.tensors) == 535
    assert sum(g.bytes for g in summary.groups.values()) == summary.total.bytes == sum(int(t.n_bytes) for t in reader.tensors)
    assert summary.groups["PLE"].tensors == 3  # token table, model projection, projection norm
    assert summary.tensor_types["Q8_0"] > 0 and summary.tensor_types["F32"] > 0
    assert 8.0 < summary.groups["PLE"].bits_per_weight < 9.0
    assert summary.metadata["general.file_type"] == 7
    assert summary.tokenizer["tokens"] == 1280 and summary.tokenizer["chat_template"]


def test_cli_json_and_table(tiny_text_f32_gguf, capsys):
    run = run_cli(capsys, "inspect", tiny_text_f32_gguf, "--json")
    assert run.code == 0
    data = json.loads(run.out)
    assert data["architecture"] == "gemma3n" and data["total"]["bits_per_weight"] == 32.0
    assert data["metadata"]["gemma3n.block_count"] == 22
    table = run_cli(capsys, "inspect", tiny_text_f32_gguf)
    assert table.code == 0 and "PLE" in table.out and "bits/weight" in table.out


def test_not_a_gguf(tmp_path, capsys):
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"not a gguf file at all")
    with pytest.raises(GGUFFileError):
        summarize(bogus)
    run = run_cli(capsys, "inspect", bogus)
    assert run.code == 1 and run.err.startswith("error:")
