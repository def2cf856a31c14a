"""convert through the engine: the dry run shows the plan quantize --dry-run shows, the written
file follows it, threads change no byte, and the converter's guards still hold."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct

import numpy as np
import pytest
from gguf import GGMLQuantizationType as GGMLType
from gguf import GGUFReader
from safetensors import safe_open

from cli_helpers import run_cli
from gemma3n_gguf.convert.text import convert
from gemma3n_gguf.core.checkpoint import Checkpoint

pytestmark = pytest.mark.slow

UP_PROJ = "model.language_model.layers.3.mlp.up_proj.weight"


def _dry_run(capsys, ckpt, dest, *extra):
    run = run_cli(capsys, "convert", ckpt, "-o", dest, "--outtype", "q8_0", "--dry-run", *extra)
    assert run.code == 0, run.err
    assert not dest.exists()
    return run


def test_dry_run_json_gives_each_type_its_rule_and_the_file_follows_it(tiny_text_checkpoint, tmp_path, capsys):
    dest = tmp_path / "m.gguf"
    plan = json.loads(_dry_run(capsys, tiny_text_checkpoint, dest, "--json").out)
    assert not list(tiny_text_checkpoint.glob("*.gguf"))  # nothing at the default output either
    by_name = {t["name"]: t for t in plan["tensors"]}
    assert plan["scheme"] == "Q8_0" and plan["file_type"] == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    assert by_name["blk.0.attn_norm.weight"]["type"] == "F32"
    assert "1-D" in by_name["blk.0.attn_norm.weight"]["reason"]
    assert by_name["blk.0.altup_correct_coef.weight"]["type"] == "F32"
    assert "AltUp" in by_name["blk.0.altup_correct_coef.weight"]["reason"]
    assert by_name["blk.0.ffn_up.weight"]["type"] == "Q8_0"
    assert "--outtype" in by_name["blk.0.ffn_up.weight"]["reason"]

    assert run_cli(capsys, "convert", tiny_text_checkpoint, "-o", dest, "--outtype", "q8_0").code == 0
    written = {t.name: GGMLType(t.tensor_type).name for t in GGUFReader(dest).tensors}
    assert written == {name: t["type"] for name, t in by_name.items()}
    assert dest.stat().st_size == plan["file_bytes"]


def test_dry_run_table_is_quantizes_table(tiny_text_checkpoint, tmp_path, capsys):
    out = _dry_run(capsys, tiny_text_checkpoint, tmp_path / "m.gguf").out
    assert "Q8_0 plan for" in out and "total" in out and "PLE table" in out
    assert "ffn_up" in out and "altup_correct_coef" in out


@pytest.mark.parametrize("outtype", ["f32", "q8_0"])
def test_threads_change_no_byte(tiny_text_checkpoint, tmp_path, outtype):
    digests = set()
    for threads in (1, 3):
        result = convert(tiny_text_checkpoint, tmp_path / f"{threads}.gguf", outtype=outtype, threads=threads)
        assert result.threads == threads
        digests.add(hashlib.sha256(result.path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_f32_output_holds_the_checkpoint_values(tiny_text_checkpoint, tmp_path):
    out = convert(tiny_text_checkpoint, tmp_path / "m.gguf", outtype="f32", threads=2).path
    ref = Checkpoint(tiny_text_checkpoint).ref(UP_PROJ)
    with safe_open(ref.file, "numpy") as f:
        expected = f.get_tensor(UP_PROJ)
    tensor = next(t for t in GGUFReader(out).tensors if t.name == "blk.3.ffn_up.weight")
    np.testing.assert_array_equal(np.asarray(tensor.data).reshape(expected.shape), expected)


@pytest.fixture
def huge_value(tiny_text_checkpoint, tmp_path):
    """A copy of tiny-text with one weight beyond the F16 range."""
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_text_checkpoint, copy)
    ref = Checkpoint(copy).ref(UP_PROJ)
    with open(ref.file, "r+b") as f:
        f.seek(ref.offset + 4 * 10)
        f.write(struct.pack("<f", 1e6))
    return copy


def test_f16_overflow_is_refused_with_the_tensor_named(huge_value, tmp_path, capsys):
    dest = tmp_path / "m.gguf"
    run = run_cli(capsys, "convert", huge_value, "-o", dest, "--outtype", "f16")
    assert run.code == 1 and "Traceback" not in run.err
    assert "blk.3.ffn_up.weight" in run.err and "use --outtype bf16 or f32" in run.err
    assert not dest.exists()
    assert run_cli(capsys, "convert", huge_value, "-o", dest, "--outtype", "bf16").code == 0
