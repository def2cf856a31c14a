"""``validate``/``check`` with --mmproj, --image and --audio on tiny-mm (text hidden 2048, as mtmd needs).

Bounds are the projector issue's: image embeddings cosine >= 0.9999 per token (f16 projector),
image-prompt top-1 100 % with exact multimodal tokens, audio embeddings cosine >= 0.9999.
"""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_cli
from gemma3n_gguf.validate.multimodal.checks import synthetic_image

pytestmark = pytest.mark.slow

MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    directory = tmp_path_factory.mktemp("media")
    image = directory / "scene.png"
    Image.fromarray(synthetic_image(500, seed=3)[:, :420].copy()).save(image)  # not the model's square
    audio = directory / "tone.wav"
    t = np.arange(22050) / 22050
    samples = (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(audio), "wb") as stream:
        stream.setnchannels(1)
        stream.setsampwidth(2)
        stream.setframerate(22050)
        stream.writeframes(samples.tobytes())
    return image, audio


def _args(tiny_mm_text_gguf, tiny_mm_mmproj, tiny_mm_checkpoint, cache, *extra):
    return (tiny_mm_text_gguf(True), "--reference", tiny_mm_checkpoint, "--mmproj", tiny_mm_mmproj("f16").path,
            "--chunks", 1, "--cache-dir", cache, *extra)


def test_validate_reports_image_and_audio_parity(capsys, tmp_path, media, tiny_mm_text_gguf, tiny_mm_mmproj,
                                                 tiny_mm_checkpoint):
    image, audio = media
    run = run_cli(capsys, "validate", *_args(tiny_mm_text_gguf, tiny_mm_mmproj, tiny_mm_checkpoint, tmp_path,
                                             "--image", image, "--audio", audio, "--json"))
    assert run.code == 0, run.err
    report = json.loads(run.out)
    by_kind = {m["kind"]: m for m in report["media"]}
    assert by_kind["image"]["source"] == str(image) and by_kind["audio"]["source"] == str(audio)
    assert by_kind["image"]["embedding_cosine"] >= MIN_COSINE
    assert by_kind["image"]["prompt_top1"] == 1.0
    assert by_kind["audio"]["embedding_cosine"] >= MIN_COSINE
    # .ci/run builds the patched runtime: audio runs in llama.cpp (the fallback: tests/runtime/test_audio_checks.py)
    assert "patched llama.cpp runtime" in by_kind["audio"]["note"]
    assert by_kind["audio"]["prompt_top1"] == 1.0
    assert report["kld"]["kld_mean"]["value"] <= 1e-4  # f32 text model


def test_baseline_with_media_checks_needs_media(capsys, tmp_path, media, tiny_mm_text_gguf, tiny_mm_mmproj,
                                                tiny_mm_checkpoint):
    image, audio = media
    baseline = tmp_path / "baseline.json"
    args = _args(tiny_mm_text_gguf, tiny_mm_mmproj, tiny_mm_checkpoint, tmp_path)
    run = run_cli(capsys, "check", *args, "--image", image, "--audio", audio, "--write-baseline", baseline)
    assert run.code == 0, run.err
    checks = json.loads(baseline.read_text())["checks"]
    for name in ("image_embedding_cosine", "audio_embedding_cosine"):
        assert checks[name]["measured"] >= MIN_COSINE and checks[name]["min"] < checks[name]["measured"]

    run = run_cli(capsys, "check", *args, "--baseline", baseline)
    assert run.code == 2 and "pass --image" in " ".join(run.err.split())
