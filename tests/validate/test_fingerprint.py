"""Checkpoint identity for cache keys."""

from __future__ import annotations

import json
import struct

import pytest

from gemma3n_gguf.core.errors import CheckpointError
from gemma3n_gguf.reference.identity import checkpoint_fingerprint


def _fake_checkpoint(root, data: bytes, config: dict | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config or {"model_type": "gemma3n_text"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(data) // 4],
                               "data_offsets": [0, len(data)]}}).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)


def test_same_content_same_fingerprint(tmp_path):
    _fake_checkpoint(tmp_path / "a", b"\1" * 4096)
    _fake_checkpoint(tmp_path / "b", b"\1" * 4096)
    assert checkpoint_fingerprint(tmp_path / "a") == checkpoint_fingerprint(tmp_path / "b")


def test_config_and_weights_both_count(tmp_path):
    _fake_checkpoint(tmp_path / "a", b"\1" * 4096)
    _fake_checkpoint(tmp_path / "b", b"\1" * 4096, {"model_type": "gemma3n_text", "x": 1})
    _fake_checkpoint(tmp_path / "c", b"\1" * 4092 + b"\2" * 4)
    prints = {checkpoint_fingerprint(tmp_path / name) for name in "abc"}
    assert len(prints) == 3


def test_large_files_are_sampled_and_full_mode_reads_everything(tmp_path):
    size = 4 * 1024 * 1024
    _fake_checkpoint(tmp_path / "a", bytes(size))
    tampered = bytearray(size)
    tampered[size // 2 + 12345] = 1  # between two samples
    _fake_checkpoint(tmp_path / "b", bytes(tampered))
    assert checkpoint_fingerprint(tmp_path / "a") == checkpoint_fingerprint(tmp_path / "b")
    assert checkpoint_fingerprint(tmp_path / "a", full=True) != checkpoint_fingerprint(
        tmp_path / "b", full=True
    )
    tampered[0] = 1  # the first sample
    _fake_checkpoint(tmp_path / "c", bytes(tampered))
    assert checkpoint_fingerprint(tmp_path / "a") != checkpoint_fingerprint(tmp_path / "c")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        checkpoint_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="safetensors"):
        checkpoint_fingerprint(tmp_path)
