"""Gemma 3n audio in the patched runtime (0002-gemma3n-audio.patch) against transformers, on
tiny-mm with a 4 s clip: soft-token count, per-token embeddings, padding rows, and the
next-token choice after an audio prompt."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.validate.multimodal.audio_runtime import (
    AUDIO_PROMPT,
    AudioReference,
    audio_runtime_parity,
    run_in_runtime,
)

pytestmark = pytest.mark.slow

SAMPLE_RATE = 16000
SOFT_TOKENS = 188  # transformers: audio_soft_tokens_per_image, whatever the clip's length up to 30 s
TOWER_TOKENS_4S = 25  # 64000 samples -> 397 frames -> 199 -> 100 (two stride-2 convs) -> every 4th
F16_MIN_COSINE = 0.999  # the bound, per soft token
# q8_0 rounds every audio matrix (and the padding row's embedding) to 8 bits per 32 values:
# measured min cosine 0.99987, top-1 1.0 and mean KLD 6e-6 after the clip on tiny-mm (seed 0);
# f16 measures 0.9999995, 1.0 and 1e-7. A wrong tensor or op gives a cosine < 0.9.
Q8_0_MIN_COSINE = 0.999
Q8_0_MIN_TOP1 = 1.0
Q8_0_MAX_KLD = 1e-4


def four_second_clip() -> np.ndarray:
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 400 * t**2))
    noise = np.random.default_rng(7).normal(0, 0.05, t.shape)
    return (chirp + 0.2 * np.sin(2 * np.pi * 1000 * t) * (t > 2) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tiny_mm_checkpoint):
    return AudioReference(tiny_mm_checkpoint)


@pytest.fixture(scope="module")
def parity(patched_runtime, reference, tiny_mm_text_gguf, tiny_mm_mmproj):
    """``get(mmproj_type)`` -> (runtime run, AudioRuntimeParity), computed once per type."""
    made = {}

    def get(mmproj_type: str):
        if mmproj_type not in made:
            clip = four_second_clip()
            run = run_in_runtime(patched_runtime, tiny_mm_text_gguf(True), tiny_mm_mmproj(mmproj_type).path, [clip],
                                 prompt=AUDIO_PROMPT)[0]
            made[mmproj_type] = (run, audio_runtime_parity(reference, run, clip))
        return made[mmproj_type]

    return get


def test_token_count_equals_what_transformers_feeds_the_text_model(parity):
    run, stats = parity("f16")
    assert stats.n_reference_tokens == SOFT_TOKENS
    assert stats.n_tokens == SOFT_TOKENS
    assert (run.tokens == -1).sum() == SOFT_TOKENS
    assert stats.n_encoder_tokens == TOWER_TOKENS_4S


def test_f16_every_soft_token_within_cosine_of_transformers(parity):
    _, stats = parity("f16")
    assert stats.min_cosine >= F16_MIN_COSINE, stats.to_dict()


def test_tower_tokens_match_get_audio_features(parity, reference):
    run, _ = parity("f16")
    ref = reference.audio_features(four_second_clip())
    cand = run.embeddings[: len(ref)]
    cosine = (ref * cand).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1))
    assert len(ref) == TOWER_TOKENS_4S
    assert cosine.min() >= F16_MIN_COSINE, cosine.min()


def test_padding_rows_are_the_padding_embedding(parity, reference):
    run, stats = parity("f16")
    padding = run.embeddings[TOWER_TOKENS_4S:]
    assert (padding == padding[0]).all()  # one row, repeated
    pad = reference.padding_embedding()
    assert np.dot(pad, padding[0]) / (np.linalg.norm(pad) * np.linalg.norm(padding[0])) >= 0.9999
    # f16 input projection: rounding only (the rows are RMS-normed, so about unit scale)
    assert stats.padding_max_abs_diff < 0.005, stats.to_dict()  # measured 0.0012
    assert not np.allclose(padding[0], run.embeddings[TOWER_TOKENS_4S - 1], atol=0.1)  # not a tower token


def test_f16_next_token_after_audio_equals_transformers_at_every_position(parity):
    _, stats = parity("f16")
    assert stats.after_audio.n_positions >= 8
    assert stats.after_audio.top1_agreement == 1.0, stats.to_dict()


def test_q8_0_within_its_stated_bounds(parity):
    _, stats = parity("q8_0")
    assert stats.n_tokens == SOFT_TOKENS
    assert stats.min_cosine >= Q8_0_MIN_COSINE, stats.to_dict()
    assert stats.after_audio.top1_agreement >= Q8_0_MIN_TOP1, stats.to_dict()
    assert stats.after_audio.mean_kld <= Q8_0_MAX_KLD, stats.to_dict()
