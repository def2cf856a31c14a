"""`convert --mmproj` / `--mmproj-only` through the real entry point, and the inputs it refuses."""

from __future__ import annotations

import json

import pytest
from gguf import GGUFReader

from cli_helpers import run_cli
from mm_fixtures import drop_tensors, edit_json, linked_copy

pytestmark = pytest.mark.slow


def _field(path, key):
    return GGUFReader(path).fields[key].contents()


def test_mmproj_writes_both_files_side_by_side(tiny_mm_checkpoint, tmp_path, capsys):
    ckpt = linked_copy(tiny_mm_checkpoint, tmp_path / "my-gemma")
    out = tmp_path / "out"
    run = run_cli(capsys, "convert", ckpt, "-o", out / "text.gguf", "--mmproj", "--json")
    assert run.code == 0, run.err
    summary = json.loads(run.out)
    projector = out / "mmproj-my-gemma-F16.gguf"  # the community's naming, beside the text GGUF
    assert summary["mmproj"]["output"] == str(projector)
    assert sorted(p.name for p in out.iterdir()) == sorted(["text.gguf", projector.name])
    assert _field(projector, "general.type") == "mmproj"
    assert summary["exact_mm_tokens"] is True  # the default with --mmproj
    assert any(t.name == "output.weight" for t in GGUFReader(out / "text.gguf").tensors)


def test_mmproj_only_writes_just_the_projector(tiny_mm_checkpoint, tmp_path, capsys):
    dest = tmp_path / "p.gguf"
    run = run_cli(capsys, "convert", tiny_mm_checkpoint, "-o", dest, "--mmproj-only", "--mmproj-type", "q8_0")
    assert run.code == 0, run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gguf"]
    assert _field(dest, "general.architecture") == "clip"
    assert "depthwise" in run.err and "instead of Q8_0" in run.err  # the adjusted types are reported


def test_text_only_conversion_keeps_tied_embeddings_by_default(tiny_mm_checkpoint, tmp_path, capsys):
    dest = tmp_path / "t.gguf"
    run = run_cli(capsys, "convert", tiny_mm_checkpoint, "-o", dest, "--outtype", "f32", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["exact_mm_tokens"] is False
    assert not any(t.name == "output.weight" for t in GGUFReader(dest).tensors)


# -- refused input: one error line, exit 1, nothing written --------------------------------


def _assert_refused(run, out_dir, *fragments):
    assert run.code == 1, run
    lines = [line for line in run.err.strip().splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), run.err
    assert "Traceback" not in run.err
    message = run.err.replace("\n", "")  # rich wraps long lines
    for fragment in fragments:
        assert fragment in message, run.err
    assert not out_dir.exists() or not any(out_dir.iterdir()), "no file (not even a partial one) may be left"


def _convert_both(capsys, ckpt, out_dir):
    return run_cli(capsys, "convert", ckpt, "-o", out_dir / "text.gguf", "--mmproj")


@pytest.fixture
def damaged(tiny_mm_checkpoint, tmp_path):
    return linked_copy(tiny_mm_checkpoint, tmp_path / "ckpt")


def test_vision_width_llama_cpp_cannot_run(damaged, tmp_path, capsys):
    edit_json(damaged / "config.json", lambda c: c["vision_config"].update(hidden_size=1024))
    out = tmp_path / "out"
    _assert_refused(_convert_both(capsys, damaged, out), out, "llama.cpp cannot run", "needs 2048")


def test_three_stage_vision_tower(damaged, tmp_path, capsys):
    assert drop_tensors(damaged, lambda n: n.startswith("model.vision_tower.timm_model.blocks.3."))
    edit_json(damaged / "config.json", lambda c: c["vision_config"]["model_args"]["block_args"].pop())
    out = tmp_path / "out"
    _assert_refused(_convert_both(capsys, damaged, out), out, "stages [0, 1, 2]", "exactly stages 0-3")


def test_missing_processor_config(damaged, tmp_path, capsys):
    (damaged / "preprocessor_config.json").unlink()
    out = tmp_path / "out"
    _assert_refused(_convert_both(capsys, damaged, out), out, "preprocessor_config.json is missing")


def test_text_only_checkpoint(damaged, tmp_path, capsys):
    drop_tensors(damaged, lambda n: n.startswith(("model.vision_tower.", "model.embed_vision.",
                                                  "model.audio_tower.", "model.embed_audio.")))
    out = tmp_path / "out"
    _assert_refused(_convert_both(capsys, damaged, out), out, "text-only checkpoint")
    _assert_refused(run_cli(capsys, "convert", damaged, "-o", out / "m.gguf", "--mmproj-only"), out, "text-only")
    exact = run_cli(capsys, "convert", damaged, "-o", out / "t.gguf", "--exact-mm-tokens")
    _assert_refused(exact, out, "need embed_vision or embed_audio weights")


def test_exact_tokens_with_mmproj_only_is_a_contradiction(tiny_mm_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    run = run_cli(capsys, "convert", tiny_mm_checkpoint, "-o", out / "m.gguf", "--mmproj-only", "--exact-mm-tokens")
    _assert_refused(run, out, "--mmproj-only")


def test_a_failing_text_conversion_leaves_neither_file(tiny_mm_checkpoint, tmp_path, capsys):
    import shutil
    import struct

    from gemma3n_gguf.core.checkpoint import Checkpoint

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_mm_checkpoint, ckpt)  # a real copy: its bytes are damaged below
    ref = Checkpoint(ckpt).ref("model.language_model.layers.1.mlp.up_proj.weight")
    with open(ref.file, "r+b") as f:
        f.seek(ref.offset)
        f.write(struct.pack("<f", float("nan")) if ref.dtype == "F32" else b"\xc0\x7f")
    out = tmp_path / "out"
    run = run_cli(capsys, "convert", ckpt, "-o", out / "text.gguf", "--mmproj")
    assert run.code == 1 and run.err.startswith("error:") and "NaN" in run.err
    assert not out.exists() or list(out.iterdir()) == []  # the projector written first was removed
