"""The projector through the engine: its rule table, the dry run that shows it, the written file
that follows it, threads that change no byte, and the converter's NaN guard on the threaded path."""

from __future__ import annotations

import hashlib
import json

import pytest
from gguf import GGMLQuantizationType as GGMLType
from gguf import GGUFReader

from cli_helpers import run_cli
from gemma3n_gguf.convert.projector.convert import convert_mmproj
from gemma3n_gguf.engine.projector_rules import Role, projector_type
from mm_fixtures import linked_copy, scale_tensor

F32, F16, BF16, Q8_0 = GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0

# (role, ne0, requested) -> (type, overruled): what llama.cpp's converter writes and what
# ggml-cpu can run (conv_2d: F32/F16 kernels; conv_2d_dw: F16/BF16; Q8_0 needs rows of 32).
EXPECTED_TYPES = [
    (Role.STEM_CONV, 3, BF16, F32, False),
    (Role.AUDIO_CONV, 3, Q8_0, F32, False),
    (Role.VECTOR, 2048, Q8_0, F32, False),
    (Role.CHANNEL_VECTOR, 1, F16, F32, False),
    (Role.INPUT_PROJECTION, 2048, F32, F16, False),
    (Role.CONV, 1, F32, F32, False),
    (Role.CONV, 1, BF16, F16, True),
    (Role.CONV, 1, Q8_0, F16, True),
    (Role.DEPTHWISE, 3, BF16, BF16, False),
    (Role.DEPTHWISE, 3, F32, F16, True),
    (Role.MATRIX, 2048, Q8_0, Q8_0, False),
    (Role.MATRIX, 48, Q8_0, F16, True),
    (Role.MATRIX, 48, BF16, BF16, False),
]


@pytest.mark.parametrize("role, ne0, requested, expected, overruled", EXPECTED_TYPES)
def test_rule_table_gives_each_role_a_type_llama_cpp_runs(role, ne0, requested, expected, overruled):
    decided = projector_type(role, ne0, requested)
    assert (decided.qtype, decided.overruled) == (expected, overruled)
    assert decided.reason.startswith(role.value)


def _plan(capsys, ckpt, *extra):
    run = run_cli(capsys, "convert", ckpt, "--dry-run", *extra)
    assert run.code == 0, run.err
    assert not list(ckpt.glob("*.gguf"))
    return run


@pytest.mark.slow
def test_dry_run_gives_each_type_its_rule_and_the_file_follows_it(tiny_mm_checkpoint, tmp_path, capsys):
    ckpt = linked_copy(tiny_mm_checkpoint, tmp_path / "ckpt")
    run = _plan(capsys, ckpt, "--mmproj-only", "--mmproj-type", "f32", "--json")
    plan = json.loads(run.out)
    assert "depthwise conv kernels written F16 instead of F32" in run.err  # warned, as the conversion does
    by_name = {t["name"]: t for t in plan["tensors"]}
    assert plan["scheme"] == "F32" and plan["file_type"] == 0  # LLAMA_FTYPE_ALL_F32
    assert by_name["v.blk.1.0.dw_mid.conv.weight"]["type"] == "F16"
    assert "instead of F32" in by_name["v.blk.1.0.dw_mid.conv.weight"]["reason"]
    assert by_name["mm.input_projection.weight"]["type"] == "F16"
    assert "kept F16" in by_name["mm.input_projection.weight"]["reason"]
    assert by_name["a.blk.0.ffn_up.weight"]["type"] == "F32"
    assert "requested --mmproj-type" in by_name["a.blk.0.ffn_up.weight"]["reason"]

    dest = tmp_path / "p.gguf"
    assert run_cli(capsys, "convert", ckpt, "-o", dest, "--mmproj-only", "--mmproj-type", "f32").code == 0
    written = {t.name: GGMLType(t.tensor_type).name for t in GGUFReader(dest).tensors}
    assert written == {name: t["type"] for name, t in by_name.items()}
    assert dest.stat().st_size == plan["file_bytes"]


@pytest.mark.slow
def test_dry_run_with_mmproj_shows_both_plans(tiny_mm_checkpoint, tmp_path, capsys):
    ckpt = linked_copy(tiny_mm_checkpoint, tmp_path / "ckpt")
    table = _plan(capsys, ckpt, "--mmproj", "--outtype", "q8_0", "--mmproj-type", "bf16").out
    assert "Q8_0 plan for" in table and "BF16 plan for" in table and "(projector)" in table  # titles may wrap
    assert "v.dw_mid.conv" in table and "ffn_up" in table  # one row per group, blocks folded
    plans = json.loads(_plan(capsys, ckpt, "--mmproj", "--json").out)
    assert plans["text"]["scheme"] == "F16" and plans["mmproj"]["scheme"] == "F16"
    assert {t["name"] for t in plans["mmproj"]["tensors"]} >= {"v.conv_stem.conv.weight", "mm.a.embedding.weight"}
    assert "blk.0.ffn_up.weight" in {t["name"] for t in plans["text"]["tensors"]}


@pytest.mark.slow
@pytest.mark.parametrize("mmproj_type", ["f16", "q8_0"])
def test_threads_change_no_byte(tiny_mm_checkpoint, tmp_path, mmproj_type):
    digests = set()
    for threads in (1, 3):
        result = convert_mmproj(tiny_mm_checkpoint, tmp_path / f"{threads}.gguf", mmproj_type=mmproj_type,
                                threads=threads)
        assert result.threads == threads
        digests.add(hashlib.sha256(result.path.read_bytes()).hexdigest())
    assert len(digests) == 1


@pytest.mark.slow
def test_nan_is_refused_with_the_tensor_named(tiny_mm_checkpoint, tmp_path, capsys):
    ckpt = linked_copy(tiny_mm_checkpoint, tmp_path / "ckpt")
    scale_tensor(ckpt, "model.embed_audio.embedding.weight", float("nan"))
    dest = tmp_path / "p.gguf"
    run = run_cli(capsys, "convert", ckpt, "-o", dest, "--mmproj-only", "--threads", "2")
    assert run.code == 1 and "Traceback" not in run.err
    assert "mm.a.embedding.weight" in run.err and "NaN" in run.err
    assert not dest.exists() and not list(tmp_path.glob("*.partial"))
