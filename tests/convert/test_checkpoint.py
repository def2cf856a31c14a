"""The lazy safetensors reader on hand-made files: rows, bf16, index checks, truncation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import CheckpointError


def _write(tmp_path, tensors: dict, index: bool = True):
    (tmp_path / "config.json").write_text("{}")
    names = sorted(tensors)
    half = len(names) // 2 or 1
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, members in shards.items():
        save_file({n: tensors[n] for n in members}, str(tmp_path / shard))
    if index:
        weight_map = {n: s for s, members in shards.items() for n in members}
        (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return tmp_path


def test_reads_rows_and_widens_bf16(tmp_path):
    a = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    b = torch.randn(5, 3).to(torch.bfloat16)
    ckpt = Checkpoint(_write(tmp_path, {"a": a, "b": b}))
    np.testing.assert_array_equal(ckpt.read("a", 2, 4), a[2:4].numpy())
    np.testing.assert_array_equal(ckpt.read("b"), b.float().numpy())
    assert ckpt.read_raw("b").dtype == np.uint16
    assert [c.shape[0] for c in ckpt.iter_rows("a", 4)] == [4, 2]


def test_missing_shard_is_named(tmp_path):
    _write(tmp_path, {"a": torch.zeros(2), "b": torch.zeros(2)})
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing: model-00002-of-00002"):
        Checkpoint(tmp_path)


def test_truncated_shard_is_detected_up_front(tmp_path):
    _write(tmp_path, {"a": torch.zeros(100), "b": torch.zeros(100)})
    shard = tmp_path / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="truncated"):
        Checkpoint(tmp_path)


def test_index_listing_absent_tensor(tmp_path):
    _write(tmp_path, {"a": torch.zeros(2), "b": torch.zeros(2)})
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["ghost"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="ghost"):
        Checkpoint(tmp_path)


def test_missing_config(tmp_path):
    with pytest.raises(CheckpointError, match="config.json is missing"):
        Checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00", b"[1, 2]"])
def test_unreadable_index_or_config_is_a_checkpoint_error(tmp_path, content):
    _write(tmp_path, {"a": torch.zeros(2), "b": torch.zeros(2)})
    (tmp_path / "model.safetensors.index.json").write_bytes(content)
    with pytest.raises(CheckpointError, match="model.safetensors.index.json"):
        Checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").unlink()
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(CheckpointError, match="config.json"):
        Checkpoint(tmp_path)
