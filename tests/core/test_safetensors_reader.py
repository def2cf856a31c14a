"""The shard reader refuses what the safetensors library refuses, and checkpoints keep to their directory."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import CheckpointError
from gemma3n_gguf.core.safetensors import MAX_HEADER_BYTES, read_shard_header

A = np.arange(6, dtype=np.float32).reshape(2, 3)
B = np.ones(4, dtype=np.float16)


def _shard(path, header: dict, data: bytes, declared_len: int | None = None):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob) if declared_len is None else declared_len) + blob + data)
    return path


def _entry(dtype: str, shape, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_a_library_written_shard_reads_as_the_library_reads_it(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"a": A, "b": B}, str(path), metadata={"format": "np"})
    header = read_shard_header(path)
    with safe_open(str(path), "numpy") as f:
        for ref in header.tensors:
            assert f.get_slice(ref.name).get_shape() == list(ref.shape)
            raw = path.read_bytes()[ref.offset:ref.offset + ref.nbytes]
            assert raw == f.get_tensor(ref.name).tobytes()
    assert header.metadata == {"format": "np"}


GOOD = {"a": _entry("F32", [2, 3], 0, 24), "b": _entry("F16", [4], 24, 32)}


@pytest.mark.parametrize(("header", "data", "message"), [
    ({"a": _entry("F32", [2, 3], 0, 20)}, bytes(20), "takes 24 bytes"),             # offsets disagree with shape
    ({"a": _entry("F32", [2, 3], 0, 24), "b": _entry("F32", [2, 3], 0, 24)}, bytes(24), "overlaps"),
    ({"a": _entry("F32", [2, 3], 8, 32)}, bytes(32), "gap"),
    ({"a": {"dtype": "F32", "shape": [2, 3]}}, bytes(24), "data_offsets"),          # missing offsets
    ({"a": _entry("F32", [2, True], 0, 8)}, bytes(8), "shape"),                       # a bool is no dimension
    ({"a": _entry("F32", [2, -3], 0, 24)}, bytes(24), "shape"),
    ({"a": _entry("F32", [2.0, 3], 0, 24)}, bytes(24), "shape"),
    ({"a": _entry("Q4", [2, 3], 0, 24)}, bytes(24), "dtype"),
    ({"a": _entry("F32", [2, 3], 0, 24)}, bytes(30), "no tensor accounts for"),       # trailing bytes
    ({"a": _entry("F32", [2, 3], 0, 24)}, bytes(10), "truncated"),
    ({"a": 5}, b"", "object"),
    ({"__metadata__": {"k": 1}, **GOOD}, bytes(32), "__metadata__"),
])
def test_headers_the_library_refuses_are_refused(tmp_path, header, data, message):
    path = _shard(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(CheckpointError, match=message):
        read_shard_header(path)
    with pytest.raises(Exception):  # the library agrees the file is bad
        safe_open(str(path), "numpy")


def test_header_length_is_capped_like_the_library(tmp_path):
    path = _shard(tmp_path / "huge.safetensors", GOOD, bytes(32), declared_len=MAX_HEADER_BYTES + 1)
    with pytest.raises(CheckpointError, match="100,000,000"):
        read_shard_header(path)


@pytest.mark.parametrize("raw", [b"", b"\x01\x00", b"\x02\x00\x00\x00\x00\x00\x00\x00[]", b"\x04\x00\x00\x00\x00\x00\x00\x00\xff\xfe{}",
                                 b"\x0e\x00\x00\x00\x00\x00\x00\x00{\"a\":1,\"a\":2}"])
def test_damaged_preambles_are_checkpoint_errors(tmp_path, raw):
    path = tmp_path / "x.safetensors"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match="x.safetensors"):
        read_shard_header(path)


def _checkpoint(root, weight_map: dict[str, str] | None = None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}")
    save_file({"a": A}, str(root / "model-1.safetensors"))
    save_file({"b": B}, str(root / "model-2.safetensors"))
    weight_map = weight_map or {"a": "model-1.safetensors", "b": "model-2.safetensors"}
    (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return root


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors",
                                   "C:\\weights.safetensors", ""])
def test_index_entries_outside_the_directory_are_refused(tmp_path, shard):
    save_file({"b": B}, str(tmp_path / "outside.safetensors"))
    root = _checkpoint(tmp_path / "ckpt", {"a": "model-1.safetensors", "b": shard})
    with pytest.raises(CheckpointError, match="outside the checkpoint"):
        Checkpoint(root)


@pytest.mark.parametrize("weight_map", [[1, 2], {"a": 5}, None, "model-1.safetensors"])
def test_a_weight_map_that_is_not_names_to_files_is_refused(tmp_path, weight_map):
    root = _checkpoint(tmp_path)
    (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match="weight_map"):
        Checkpoint(root)


def test_a_tensor_stored_in_two_shards_is_refused(tmp_path):
    root = _checkpoint(tmp_path, {"a": "model-1.safetensors", "b": "model-2.safetensors"})
    save_file({"a": A, "b": B}, str(root / "model-2.safetensors"))
    with pytest.raises(CheckpointError, match="stored twice"):
        Checkpoint(root)


def test_a_hub_snapshot_of_symlinks_reads_like_a_plain_copy(tmp_path):
    plain = _checkpoint(tmp_path / "plain")
    blobs, snapshot = tmp_path / "hub" / "blobs", tmp_path / "hub" / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, file in enumerate(sorted(plain.iterdir())):
        shutil.copy(file, blobs / f"blob{i}")
        os.symlink(f"../../blobs/blob{i}", snapshot / file.name)
    linked, copied = Checkpoint(snapshot), Checkpoint(plain)
    assert sorted(linked.tensors) == sorted(copied.tensors) == ["a", "b"]
    for name in copied.tensors:
        np.testing.assert_array_equal(linked.read(name), copied.read(name))
