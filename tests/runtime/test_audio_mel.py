"""The patched runtime's Gemma 3n mel front end (mtmd_audio_features) against transformers'
Gemma3nAudioFeatureExtractor: silence, a tone and noise at 1 s, 30 s and 31 s (longer clips
keep their first 30 s, as the extractor truncates them)."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.validate.multimodal.audio_runtime import extractor_features, run_in_runtime

pytestmark = pytest.mark.slow

SAMPLE_RATE = 16000
# Log-mel units (natural log of magnitudes). The runtime's FFT is float32, transformers' numpy
# float64, so a bin ~1e-6 of the clip's peak carries float32 rounding noise: measured max 0.052
# (the tone's quietest bins, 13-14 nats below its peak), 1.3e-4 on noise, 0 on silence. Within
# 10 nats of the peak the measured max is 3.9e-4; a wrong constant (window, pre-emphasis, mel
# edges, floor) moves those by more than 0.01.
MAX_FEATURE_DIFF = 0.06
MAX_STRONG_FEATURE_DIFF = 1e-3
STRONG_NATS = 10.0
FRAMES = {1: 97, 30: 2997, 31: 2997}  # (samples padded to 128 - 513) // 160 + 1; 31 s is cut to 30


def clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for seconds in FRAMES:
        t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
        out[f"silence_{seconds}s"] = np.zeros_like(t)
        out[f"tone_{seconds}s"] = 0.5 * np.sin(2 * np.pi * 440 * t)
        out[f"noise_{seconds}s"] = rng.normal(0, 0.1, t.shape)
    return {name: wave.astype(np.float32) for name, wave in out.items()}


@pytest.fixture(scope="module")
def features(patched_runtime, tiny_mm_checkpoint, tiny_mm_text_gguf, tiny_mm_mmproj):
    """{clip: (runtime features, transformers features)}."""
    waves = clips()
    runs = run_in_runtime(patched_runtime, tiny_mm_text_gguf(True), tiny_mm_mmproj("f16").path, list(waves.values()),
                          embeddings=False)
    reference = extractor_features(tiny_mm_checkpoint)
    return {name: (run.features, reference(wave)) for (name, wave), run in zip(waves.items(), runs)}


@pytest.mark.parametrize("name", list(clips()))
def test_mel_features_match_the_feature_extractor(features, name):
    runtime, expected = features[name]
    seconds = int(name.rsplit("_", 1)[1][:-1])
    assert runtime.shape == expected.shape == (FRAMES[seconds], 128)
    diff = np.abs(runtime - expected)
    assert diff.max() <= MAX_FEATURE_DIFF
    strong = expected > expected.max() - STRONG_NATS
    assert diff[strong].max() <= MAX_STRONG_FEATURE_DIFF


def test_silence_is_the_floor_everywhere(features):
    runtime, expected = features["silence_1s"]
    assert np.array_equal(expected, np.full_like(expected, np.float32(np.log(1e-5))))
    assert np.abs(runtime - expected).max() < 1e-6


def test_31s_keeps_the_first_30s(features):
    assert np.array_equal(features["tone_31s"][1], features["tone_30s"][1])
    assert np.abs(features["tone_31s"][0] - features["tone_30s"][0]).max() == 0.0
