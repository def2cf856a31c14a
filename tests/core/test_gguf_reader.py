"""The GGUF reader refuses, with the reason, every file ggml's own reader would refuse."""

from __future__ import annotations

import struct

import pytest
from gguf import GGUFReader

from cli_helpers import run_cli
from fuzz.samples import gguf_bytes, ggml_would_load
from gemma3n_gguf.core.errors import GGUFFileError
from gemma3n_gguf.core.gguf_read import open_gguf


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    data = gguf_bytes(root)
    return root / "sample.gguf", data


def _tensor_field(path, name: str, part: int) -> int:
    """Byte offset of one part of a tensor's info (2 n_dims, 3 dims, 4 type, 5 offset)."""
    reader = GGUFReader(path)
    tensor = next(t for t in reader.tensors if t.name == name)
    return tensor.field.parts[part].ctypes.data - reader.data.ctypes.data


def _patched(data: bytes, offset: int, raw: bytes) -> bytes:
    return data[:offset] + raw + data[offset + len(raw):]


def test_the_sample_loads_in_ggml_and_here(valid):
    path, _ = valid
    assert ggml_would_load(path)
    gguf = open_gguf(path)
    assert gguf.architecture == "gemma3n"
    assert [t.name for t in gguf.layout.tensors] == ["a", "b", "c"]
    assert gguf.value("tokenizer.ggml.tokens") == ["<pad>", "a", "b"]


def _damage(valid, kind: str) -> bytes:
    path, data = valid
    if kind == "magic":
        return b"GGML" + data[4:]
    if kind == "version 1":
        return _patched(data, 4, struct.pack("<I", 1))
    if kind == "byte-swapped":
        return _patched(data, 4, struct.pack(">I", 3))
    if kind == "truncated":
        return data[:-40]
    if kind == "offset out of order":
        return _patched(data, _tensor_field(path, "b", 5), struct.pack("<Q", 0))
    if kind == "misaligned offset":
        return _patched(data, _tensor_field(path, "b", 5), struct.pack("<Q", 130))
    if kind == "type no longer matches the bytes":  # F32 -> F16 halves a's size
        return _patched(data, _tensor_field(path, "a", 4), struct.pack("<I", 1))
    if kind == "dimension no longer matches the bytes":
        return _patched(data, _tensor_field(path, "a", 3), struct.pack("<Q", 16))
    if kind == "row not a multiple of the block":  # F32 -> Q8_0 with 8 values per row
        return _patched(data, _tensor_field(path, "a", 4), struct.pack("<I", 8))
    if kind == "unknown type":
        return _patched(data, _tensor_field(path, "a", 4), struct.pack("<I", 99))
    if kind == "absurd tensor count":
        return _patched(data, 8, struct.pack("<Q", 2**40))
    raise AssertionError(kind)


KINDS_AND_REASONS = [
    ("magic", "not a GGUF file"),
    ("version 1", "version 1 "),
    ("byte-swapped", "byte-swapped"),
    ("truncated", "past the end of the file"),
    ("offset out of order", "expected 128"),
    ("misaligned offset", "expected 128"),
    ("type no longer matches the bytes", "expected 64"),
    ("dimension no longer matches the bytes", "expected 256"),
    ("row not a multiple of the block", "block size 32"),
    ("unknown type", "unknown ggml type 99"),
    ("absurd tensor count", "absurd counts"),
]


@pytest.mark.parametrize(("kind", "reason"), KINDS_AND_REASONS)
def test_files_ggml_refuses_are_refused_with_the_reason(valid, tmp_path, kind, reason):
    path = tmp_path / "damaged.gguf"
    path.write_bytes(_damage(valid, kind))
    assert not ggml_would_load(path)  # the judge agrees the file is broken
    with pytest.raises(GGUFFileError, match=reason):
        open_gguf(path)


@pytest.mark.parametrize(("kind", "reason"), KINDS_AND_REASONS[3:6])
def test_inspect_says_why_a_file_will_not_load(valid, tmp_path, capsys, kind, reason):
    path = tmp_path / "damaged.gguf"
    path.write_bytes(_damage(valid, kind))
    run = run_cli(capsys, "inspect", path)
    assert run.code == 1
    assert "will not load in llama.cpp" in run.err and reason in run.err
    assert "Traceback" not in run.err


def test_inspect_summarises_a_loadable_projector_with_odd_names_and_types(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    from gemma3n_gguf.inspection import summarize

    path = tmp_path / "odd.gguf"
    writer = GGUFWriter(path, "clip")
    writer.add_string("clip.vision.image_size", "big")  # a string where an integer belongs
    writer.add_uint32("clip.vision.patch_size", 0)
    writer.add_tensor("v.blk.x", np.zeros(4, np.float32))  # no stage or block number
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert ggml_would_load(path)
    projector = summarize(path).projector
    assert projector["tokens_per_image"] is None and projector["blocks_per_stage"] == []
