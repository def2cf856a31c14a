"""``gemma3n-gguf validate``: output, and one clear error (exit 1) for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli

from .conftest import PIPELINE_CHUNKS
from .gguf_rewrite import truncate_vocab

pytestmark = pytest.mark.slow


def _assert_one_error(run, *fragments: str) -> None:
    assert run.code == 1, (run.out, run.err)
    assert run.err.count("error:") == 1 and "Traceback" not in run.err, run.err
    flat = " ".join(run.err.split())  # rich wraps long lines
    for fragment in fragments:
        assert fragment in flat, flat


def _reference_copy(checkpoint: Path, destination: Path, **text_config) -> Path:
    """The checkpoint's files (weights linked), with some text_config values changed."""
    destination.mkdir()
    for item in checkpoint.iterdir():
        if item.name != "config.json":
            (destination / item.name).symlink_to(item)
    config = json.loads((checkpoint / "config.json").read_text())
    config["text_config"].update(text_config)
    (destination / "config.json").write_text(json.dumps(config))
    return destination


def test_json_report(capsys, tiny_text_checkpoint, tiny_text_quant, shared_reference_cache):
    run = run_cli(capsys, "validate", tiny_text_quant("Q8_0"), "--reference", tiny_text_checkpoint,
                  "--chunks", PIPELINE_CHUNKS, "--cache-dir", shared_reference_cache, "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["protocol"]["scored_tokens"] == PIPELINE_CHUNKS * 255
    kld = report["kld"]
    assert 0 < kld["kld_mean"]["value"] and 0 < kld["kld_mean"]["uncertainty"] < kld["kld_mean"]["value"]
    assert set(kld["kld_percentiles"]) >= {"max", "99.9", "99", "95", "90", "median"}
    assert kld["kld_percentiles"]["max"] >= kld["kld_percentiles"]["99"] >= kld["kld_percentiles"]["median"]
    assert 0.5 < kld["same_top1"]["value"] < 1.0
    assert report["tokenizer"]["agree"] is True


def test_table_report(capsys, tiny_text_checkpoint, tiny_text_quant, shared_reference_cache):
    run = run_cli(capsys, "validate", tiny_text_quant("Q8_0"), "--reference", tiny_text_checkpoint,
                  "--chunks", PIPELINE_CHUNKS, "--cache-dir", shared_reference_cache)
    assert run.code == 0, run.err
    for label in ("PPL(ref)", "PPL(Q)", "PPL(Q)/PPL(ref)", "mean KLD", "max KLD", "99.9% KLD", "99% KLD",
                  "95% KLD", "90% KLD", "median KLD", "same top-1", "mean Δp", "RMS Δp"):
        assert label in run.out, label
    assert "±" in run.out


def test_gguf_of_another_architecture(capsys, tiny_llama_gguf, tiny_text_checkpoint):
    run = run_cli(capsys, "validate", tiny_llama_gguf.path, "--reference", tiny_text_checkpoint)
    _assert_one_error(run, "'llama' model, not gemma3n")


def test_missing_model_file(capsys, tmp_path, tiny_text_checkpoint):
    run = run_cli(capsys, "validate", tmp_path / "absent.gguf", "--reference", tiny_text_checkpoint)
    _assert_one_error(run, "absent.gguf does not exist")


def test_reference_with_another_layer_count(capsys, tmp_path, tiny_text_checkpoint, tiny_text_f32_gguf):
    reference = _reference_copy(tiny_text_checkpoint, tmp_path / "ref", num_hidden_layers=21)
    run = run_cli(capsys, "validate", tiny_text_f32_gguf, "--reference", reference)
    _assert_one_error(run, "the GGUF has 22 layers, the reference 21")


def test_reference_with_another_vocabulary(capsys, tmp_path, tiny_text_checkpoint, tiny_text_f32_gguf):
    reference = _reference_copy(tiny_text_checkpoint, tmp_path / "ref", vocab_size=1536)
    run = run_cli(capsys, "validate", tiny_text_f32_gguf, "--reference", reference)
    _assert_one_error(run, "the GGUF has 1,280 tokens, the reference 1,536", "--align-vocab")


def test_text_too_short_for_one_window(capsys, tmp_path, tiny_text_checkpoint, tiny_text_f32_gguf):
    text = tmp_path / "short.txt"
    text.write_text("A few words only.")
    run = run_cli(capsys, "validate", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint, "--text", text)
    _assert_one_error(run, "one window of --ctx 512 needs at least 512")


def test_unreadable_image(capsys, tmp_path, tiny_text_checkpoint, tiny_text_f32_gguf):
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n but not really an image")
    run = run_cli(capsys, "validate", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint,
                  "--image", image, "--mmproj", tiny_text_f32_gguf)
    _assert_one_error(run, "cannot read image", "photo.png")


def test_image_without_projector(capsys, tmp_path, tiny_text_checkpoint, tiny_text_f32_gguf):
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(image)
    run = run_cli(capsys, "validate", tiny_text_f32_gguf, "--reference", tiny_text_checkpoint, "--image", image)
    _assert_one_error(run, "pass --mmproj")


@pytest.fixture(scope="module")
def text_vocab_gguf(tiny_text_f32_gguf, tmp_path_factory):
    """tiny-text f32 without the 256 multimodal ids, as older converters write Gemma 3n."""
    return truncate_vocab(tiny_text_f32_gguf, tmp_path_factory.mktemp("v1024") / "tiny-1024.gguf", 1024)


def test_text_only_vocabulary_is_refused_with_the_reason(capsys, text_vocab_gguf, tiny_text_checkpoint):
    run = run_cli(capsys, "validate", text_vocab_gguf, "--reference", tiny_text_checkpoint)
    _assert_one_error(run, "1,024 tokens, the reference 1,280", "lacks the 256 multimodal token ids",
                      "--align-vocab")


def test_text_only_vocabulary_is_compared_when_aligned(
    capsys, text_vocab_gguf, tiny_text_checkpoint, shared_reference_cache
):
    run = run_cli(capsys, "validate", text_vocab_gguf, "--reference", tiny_text_checkpoint, "--align-vocab",
                  "--chunks", 2, "--cache-dir", shared_reference_cache, "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["protocol"]["vocab_compared"] == 1024 and report["protocol"]["vocab_aligned"] is True
    assert any("vocabularies aligned" in w for w in report["warnings"])
    # The same f32 weights over the shared ids: as close to the reference as the full file.
    assert report["kld"]["kld_mean"]["value"] <= 1e-4
