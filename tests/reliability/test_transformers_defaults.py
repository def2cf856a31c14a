"""Where transformers fills a default to load a checkpoint, convert fills the same and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gguf import GGUFReader

from cli_helpers import run_cli
from gemma3n_gguf.convert.projector.config import FEATURE_EXTRACTOR_FIELDS, extractor_as_transformers_builds_it

PREFIX = "clip.audio.feature_extractor."


def linked_copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for path in src.iterdir():
        (dst / path.name).symlink_to(path)
    return dst


def extractor_keys(path: Path) -> dict[str, object]:
    reader = GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items() if name.startswith(PREFIX)}


def test_a_preprocessor_config_without_audio_settings_converts_with_transformers_defaults(
        tiny_mm_checkpoint, tiny_mm_mmproj, tmp_path, capsys):
    ckpt = linked_copy(tiny_mm_checkpoint, tmp_path / "ckpt")
    released = json.loads((tiny_mm_checkpoint / "preprocessor_config.json").read_text())
    image_only = {k: v for k, v in released.items() if k not in FEATURE_EXTRACTOR_FIELDS}
    (ckpt / "preprocessor_config.json").unlink()
    (ckpt / "preprocessor_config.json").write_text(json.dumps(image_only))

    result = run_cli(capsys, "convert", ckpt, "--mmproj-only", "-o", tmp_path / "mmproj.gguf")

    assert result.code == 0, result.err
    assert ("preprocessor_config.json lacks audio feature extractor settings; using transformers' "
            "Gemma3nAudioFeatureExtractor defaults, as transformers does: feature_size=128, sampling_rate=16000, "
            "frame_length=512, hop_length=160, fft_length=1024, fft_overdrive=True, min_frequency=125.0, "
            "max_frequency=7600.0, mel_floor=1e-05, preemphasis=0.97, preemphasis_htk_flavor=True, "
            "input_scale_factor=1.0, dither=0.0, padding_value=0.0") in " ".join((result.out + result.err).split())
    # the defaults are the released values: the projector is the one made from the full file
    assert extractor_keys(tmp_path / "mmproj.gguf") == extractor_keys(tiny_mm_mmproj("f16").path)


@pytest.mark.parametrize("preprocessor", [
    {},
    {"sampling_rate": 8000},
    {"fft_overdrive": False, "feature_size": 64, "mel_floor": 1e-3},
    {"frame_length_ms": 25.0, "hop_length_ms": 12.5, "dither": 0.1},
], ids=["empty", "8 kHz", "no overdrive", "other windows"])
def test_the_defaults_are_what_transformers_fills(preprocessor):
    from transformers.models.gemma3n.feature_extraction_gemma3n import Gemma3nAudioFeatureExtractor

    extractor = Gemma3nAudioFeatureExtractor.from_dict(dict(preprocessor))
    built = extractor_as_transformers_builds_it(preprocessor)
    for field in FEATURE_EXTRACTOR_FIELDS:
        expected = getattr(extractor, field)
        assert built[field] == (expected.item() if hasattr(expected, "item") else expected), field
