"""imatrix files: GGUF round trip, legacy .dat, llama-quantize's normalization, model matching."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.quantize.imatrix import (
    Imatrix,
    ImatrixEntry,
    assign_imatrix,
    filter_entries,
    normalize,
    quantize_metadata,
    read_imatrix,
    write_imatrix_gguf,
)
from gemma3n_gguf.engine.planner import plan_types

from .gemma3n_layout import E2B, TINY, text_tensors

F = np.float32


def _sample() -> Imatrix:
    return Imatrix(
        entries={
            "blk.1.ffn_down.weight": ImatrixEntry(np.array([[3, 5, 7, 9]], F), np.array([2])),
            "blk.0.attn_q.weight": ImatrixEntry(np.array([[1, 2], [4, 8], [6, 6]], F), np.array([4, 0, 3])),
        },
        datasets=["calibration.txt", "second.txt"], chunk_count=12, chunk_size=512)


def test_gguf_round_trip(tmp_path):
    path = tmp_path / "imatrix.gguf"
    write_imatrix_gguf(path, _sample())
    back = read_imatrix(path)
    assert (back.datasets, back.chunk_count, back.chunk_size) == (["calibration.txt", "second.txt"], 12, 512)
    assert list(back.entries) == sorted(_sample().entries)
    for name, entry in _sample().entries.items():
        assert np.array_equal(back.entries[name].sums, entry.sums)
        assert np.array_equal(back.entries[name].counts, entry.counts)
    reader = GGUFReader(path)
    assert reader.get_field("general.type").contents() == "imatrix"
    assert reader.get_field("general.architecture") is None
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # ggml order
    assert shapes["blk.0.attn_q.weight.in_sum2"] == [2, 3] and shapes["blk.0.attn_q.weight.counts"] == [1, 3]
    assert [t.name for t in reader.tensors][:2] == ["blk.0.attn_q.weight.in_sum2", "blk.0.attn_q.weight.counts"]


def _write_raw_gguf(path: Path, sums: np.ndarray, counts: np.ndarray, metadata: bool = True,
                    kind: str = "imatrix") -> None:
    writer = GGUFWriter(path, arch="unused")
    writer.add_type(kind)
    if metadata:
        writer.add_array("imatrix.datasets", ["d.txt"])
        writer.add_uint32("imatrix.chunk_count", 3)
        writer.add_uint32("imatrix.chunk_size", 512)
    writer.add_tensor("w.in_sum2", sums.astype(F))
    writer.add_tensor("w.counts", counts.astype(F).reshape(-1, 1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_normalization_matches_llama_quantize(tmp_path):
    sums = np.array([[1.0, 10.0], [7.0, 3.0], [5.0, 5.0], [2.0, 9.0]], F)
    counts = np.array([3.0, 2.5, 0.4, 0.0], F)  # lround: 3, 3 (half away from zero), 0, 0
    _write_raw_gguf(tmp_path / "m.gguf", sums, counts)
    values = normalize(read_imatrix(tmp_path / "m.gguf"))["w"]
    expected = np.array([F(1) / F(3), F(10) / F(3), F(7) / F(3), F(3) / F(3), 1, 1, 1, 1], F)
    assert values.dtype == F and np.array_equal(values, expected)


def _write_dat(path: Path, entries: list[tuple[str, int, list[float]]], trailer: tuple[int, str] | None) -> None:
    blob = struct.pack("<i", len(entries))
    for name, ncall, values in entries:
        raw = name.encode()
        blob += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, len(values))
        blob += np.asarray(values, "<f4").tobytes()
    if trailer:
        blob += struct.pack("<i", trailer[0]) + struct.pack("<i", len(trailer[1])) + trailer[1].encode()
    path.write_bytes(blob)


def test_legacy_dat_is_read_and_divided_by_ncall(tmp_path):
    path = tmp_path / "old.dat"
    _write_dat(path, [("a.weight", 3, [3.0, 1.0, 7.5]), ("b.weight", 0, [2.0, 4.0])], (42, "wiki.txt"))
    imatrix = read_imatrix(path)
    assert imatrix.is_legacy and imatrix.chunk_count == 42 and imatrix.datasets == ["wiki.txt"]
    values = normalize(imatrix)
    assert np.array_equal(values["a.weight"], np.array([1.0, F(1) / F(3), 2.5], F))
    assert np.array_equal(values["b.weight"], np.array([2.0, 4.0], F))  # ncall 0: stored values as is
    _write_dat(path, [("a.weight", 1, [1.0])], None)  # the trailer is optional
    assert read_imatrix(path).chunk_count == 0


def test_nan_in_imatrix_is_an_error(tmp_path):
    _write_raw_gguf(tmp_path / "nan.gguf", np.array([[1.0, np.nan]], F), np.array([2.0], F))
    with pytest.raises(QuantizationError, match="NaN"):
        normalize(read_imatrix(tmp_path / "nan.gguf"))
    _write_dat(tmp_path / "nan.dat", [("a.weight", 1, [np.inf])], None)
    with pytest.raises(QuantizationError, match="NaN or Inf"):
        normalize(read_imatrix(tmp_path / "nan.dat"))


def test_unusable_files_are_errors(tmp_path):
    _write_raw_gguf(tmp_path / "bare.gguf", np.ones((1, 2), F), np.ones(1, F), metadata=False)
    with pytest.raises(QuantizationError, match="metadata"):
        normalize(read_imatrix(tmp_path / "bare.gguf"))
    _write_raw_gguf(tmp_path / "model.gguf", np.ones((1, 2), F), np.ones(1, F), kind="model")
    with pytest.raises(QuantizationError, match="not an imatrix"):
        read_imatrix(tmp_path / "model.gguf")
    (tmp_path / "junk.dat").write_bytes(b"\x05\x00\x00\x00abc")
    with pytest.raises(QuantizationError):
        read_imatrix(tmp_path / "junk.dat")
    with pytest.raises(QuantizationError, match="cannot read"):
        read_imatrix(tmp_path / "absent.gguf")
    with pytest.raises(QuantizationError, match="dataset"):
        write_imatrix_gguf(tmp_path / "no-dataset.gguf", Imatrix(_sample().entries))
    assert not (tmp_path / "no-dataset.gguf").exists()


def _values_for(tensors, names) -> dict[str, np.ndarray]:
    shapes = {t.name: t.shape for t in tensors}
    return {name: np.ones(shapes[name][0], F) for name in names}


def test_imatrix_is_assigned_and_kv_shared_layers_go_without():
    tensors = text_tensors(E2B)
    quantized = [c.name for t, c in zip(tensors, plan_types(tensors, "Q4_K_M")) if c.qtype != t.source_type]
    # what llama-imatrix records: matmul weights of blk.*, minus K/V of the KV-shared layers 20..29
    recorded = [n for n in quantized if n.startswith("blk.")
                and not (int(n.split(".")[1]) >= 20 and n.split(".")[2] in ("attn_k", "attn_v"))]
    assignment = assign_imatrix(_values_for(tensors, recorded), tensors, quantized)
    assert set(assignment.values) == set(recorded)
    assert sorted(assignment.missing) == sorted(
        ["token_embd.weight", "per_layer_token_embd.weight"]
        + [f"blk.{il}.{kind}.weight" for il in range(20, 30) for kind in ("attn_k", "attn_v")])


def test_imatrix_of_another_model_is_an_error():
    e2b, tiny = text_tensors(E2B), text_tensors(TINY)
    with pytest.raises(QuantizationError, match="another model.*blk.25"):  # TINY has 22 layers
        assign_imatrix(_values_for(e2b, ["blk.25.attn_q.weight"]), tiny, [])
    with pytest.raises(QuantizationError, match="another model.*2048 values"):
        assign_imatrix(_values_for(e2b, ["blk.0.attn_q.weight"]), tiny, ["blk.0.attn_q.weight"])


def test_embedding_entry_of_wrong_size_is_dropped_like_llama_quantize():
    tensors = text_tensors(TINY)
    assignment = assign_imatrix({"token_embd.weight": np.ones(3, F)}, tensors, ["token_embd.weight"])
    assert assignment.values == {} and assignment.missing == ["token_embd.weight"]


def test_filters_and_output_metadata():
    imatrix = _sample()
    assert list(filter_entries(imatrix, exclude=["ffn_down"]).entries) == ["blk.0.attn_q.weight"]
    assert list(filter_entries(imatrix, include=["ffn_down"]).entries) == ["blk.1.ffn_down.weight"]
    with pytest.raises(QuantizationError):
        filter_entries(imatrix, include=["a"], exclude=["b"])
    long_name = "x" * 200
    assert quantize_metadata(imatrix, long_name, 2) == [
        ("quantize.imatrix.file", "x" * 127), ("quantize.imatrix.dataset", "calibration.txt"),
        ("quantize.imatrix.entries_count", 2), ("quantize.imatrix.chunks_count", 12)]


def test_ggml_gguf_parser_reads_our_file(tmp_path):
    import ctypes

    from gemma3n_gguf.core.ggml import ggml_library

    class InitParams(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    lib = ctypes.CDLL(str(ggml_library().path))
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, InitParams]
    lib.gguf_get_n_tensors.argtypes = lib.gguf_free.argtypes = [ctypes.c_void_p]
    lib.gguf_get_n_tensors.restype = ctypes.c_int64
    lib.gguf_find_key.argtypes, lib.gguf_find_key.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_int64
    lib.gguf_get_val_str.argtypes, lib.gguf_get_val_str.restype = [ctypes.c_void_p, ctypes.c_int64], ctypes.c_char_p

    path = tmp_path / "imatrix.gguf"
    write_imatrix_gguf(path, _sample())
    ctx = lib.gguf_init_from_file(str(path).encode(), InitParams(True, None))
    assert ctx, "ggml's gguf parser rejected the file"
    try:
        assert lib.gguf_get_n_tensors(ctx) == 4
        for key in ("imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"):
            assert lib.gguf_find_key(ctx, key.encode()) >= 0
        assert lib.gguf_get_val_str(ctx, lib.gguf_find_key(ctx, b"general.type")) == b"imatrix"
    finally:
        lib.gguf_free(ctx)
