"""Bad input gives one clear error line, exit code 1, and no file at the destination."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
import torch
from safetensors.torch import save_file

from cli_helpers import run_cli
from gemma3n_gguf.core.checkpoint import Checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture
def broken(tiny_text_checkpoint, tmp_path):
    """A private copy of tiny-text to damage."""
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_text_checkpoint, copy)
    return copy


def _assert_clean_failure(run, dest, *fragments):
    assert run.code == 1, run
    lines = [line for line in run.err.strip().splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in run.err, run.err
    assert not dest.exists()
    assert not list(dest.parent.glob(f".{dest.name}*")), "temporary file left behind"


def _shard_of(ckpt_dir, tensor):
    index = json.loads((ckpt_dir / "model.safetensors.index.json").read_text())
    return ckpt_dir / index["weight_map"][tensor]


def _convert(capsys, ckpt, dest):
    return run_cli(capsys, "convert", ckpt, "-o", dest, "--outtype", "f32")


def test_missing_shard(broken, tmp_path, capsys):
    _shard_of(broken, "model.language_model.norm.weight").unlink()
    dest = tmp_path / "out" / "m.gguf"
    _assert_clean_failure(_convert(capsys, broken, dest), dest, "missing")


def test_truncated_safetensors(broken, tmp_path, capsys):
    shard = _shard_of(broken, "model.language_model.norm.weight")
    shard.write_bytes(shard.read_bytes()[:-1000])
    dest = tmp_path / "out" / "m.gguf"
    _assert_clean_failure(_convert(capsys, broken, dest), dest, "truncated")


def test_missing_tokenizer_model(broken, tmp_path, capsys):
    (broken / "tokenizer.model").unlink()
    dest = tmp_path / "out" / "m.gguf"
    run = _convert(capsys, broken, dest)
    _assert_clean_failure(run, dest, "tokenizer.model")
    assert run.err.count("\n") == 1, "a long message must stay one line, not be wrapped"


def test_not_a_gemma3n_config(broken, tmp_path, capsys):
    config = json.loads((broken / "config.json").read_text())
    config["model_type"] = "llama"
    (broken / "config.json").write_text(json.dumps(config))
    dest = tmp_path / "out" / "m.gguf"
    _assert_clean_failure(_convert(capsys, broken, dest), dest, "not a Gemma 3n checkpoint")


def test_unmapped_tensor_is_listed(broken, tmp_path, capsys):
    extra = "model.language_model.layers.0.mystery_adapter.weight"
    save_file({extra: torch.zeros(4, 4)}, str(broken / "extra.safetensors"))
    index_path = broken / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"][extra] = "extra.safetensors"
    index_path.write_text(json.dumps(index))
    dest = tmp_path / "out" / "m.gguf"
    _assert_clean_failure(_convert(capsys, broken, dest), dest, "no GGUF name", extra)


def test_nan_weight(broken, tmp_path, capsys):
    name = "model.language_model.layers.3.mlp.up_proj.weight"
    ref = Checkpoint(broken).ref(name)
    with open(ref.file, "r+b") as f:
        f.seek(ref.offset + 4 * 10)
        f.write(struct.pack("<f", float("nan")))
    dest = tmp_path / "out" / "m.gguf"
    _assert_clean_failure(_convert(capsys, broken, dest), dest, "NaN", "blk.3.ffn_up.weight")


def test_unwritable_destination(tiny_text_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    dest = blocker / "m.gguf"
    run = _convert(capsys, tiny_text_checkpoint, dest)
    assert run.code == 1 and run.err.startswith("error:") and "cannot write" in run.err
    assert "Traceback" not in run.err


def test_interrupt_leaves_no_file(tiny_text_checkpoint, tmp_path):
    from gemma3n_gguf.convert import convert

    dest = tmp_path / "m.gguf"

    def interrupt(done, total, what):
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(tiny_text_checkpoint, dest, outtype="f32", on_progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_bad_config_refused_unless_forced(broken, tmp_path, capsys):
    config = json.loads((broken / "config.json").read_text())
    config["text_config"]["activation_sparsity_pattern"] = [0.0] * 22
    (broken / "config.json").write_text(json.dumps(config))
    dest = tmp_path / "out" / "m.gguf"
    # "[0, 1, ...]" must survive: messages are printed as text, not as rich markup
    _assert_clean_failure(_convert(capsys, broken, dest), dest, "activation_sparsity_pattern", "[0, 1, 2", "--force")
    forced = run_cli(capsys, "convert", broken, "-o", dest, "--outtype", "f32", "--force")
    assert forced.code == 0 and dest.is_file()
    assert "warning" in forced.err and "activation_sparsity_pattern" in forced.err


def test_destination_is_a_directory(tiny_text_checkpoint, tmp_path, capsys):
    dest = tmp_path / "already-a-dir.gguf"
    dest.mkdir()
    run = _convert(capsys, tiny_text_checkpoint, dest)
    assert run.code == 1 and run.err.startswith("error:") and "cannot write" in run.err
    assert "Traceback" not in run.err
    assert dest.is_dir() and not list(dest.iterdir())
    assert not list(tmp_path.glob(".already-a-dir.gguf*")), "temporary file left behind"
