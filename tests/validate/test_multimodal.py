"""tiny-mm through llama.cpp's mtmd against transformers: image embeddings, image prompts,
and the audio tower on the reference path (llama.cpp has no Gemma 3n audio graph)."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession
from gemma3n_gguf.validate.multimodal.checks import (
    VisionReference,
    audio_parity,
    audio_round_trip,
    embedding_parity,
    image_embedding_parity,
    image_parity,
    image_prompt_parity,
    synthetic_image,
)

EMBEDDING_MIN_COSINE = 0.9999  # per image token, f16 projector vs transformers fp32
AUDIO_F16_MIN_COSINE = 0.9999
# q8_0 rounds each audio matrix to 8 bits per 32 values; measured 0.99988 on tiny-mm. The bound
# leaves room for other seeds while staying far above what a wrong tensor gives (< 0.9).
AUDIO_Q8_0_MIN_COSINE = 0.999


def test_embedding_parity_measures_what_it_says():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(4, 8))
    cand = ref.copy()
    cand[2] = -cand[2]  # one token pointing the other way
    stats = embedding_parity(ref, cand)
    assert stats.min_cosine == pytest.approx(-1.0)
    assert stats.max_abs_diff == pytest.approx(2 * np.abs(ref[2]).max())
    assert list(np.round(stats.per_token_cosine, 12)) == [1.0, 1.0, -1.0, 1.0]


@pytest.fixture(scope="module")
def reference(tiny_mm_checkpoint):
    return VisionReference(tiny_mm_checkpoint)


@pytest.mark.slow
def test_f16_projector_loads_in_mtmd(tiny_mm_text_gguf, tiny_mm_mmproj):
    with MtmdSession(tiny_mm_text_gguf(False), tiny_mm_mmproj("f16").path) as session:
        assert session.supports_vision
        assert not session.supports_audio  # clip.cpp skips audio when the vision projector is gemma3nv
        assert session.n_embd == 2048


@pytest.mark.slow
@pytest.mark.parametrize("mmproj_type", ["f16", "f32", "bf16", "q8_0"])
def test_image_embeddings_match_transformers(reference, tiny_mm_text_gguf, tiny_mm_mmproj, mmproj_type):
    with MtmdSession(tiny_mm_text_gguf(False), tiny_mm_mmproj(mmproj_type).path) as session:
        stats = image_embedding_parity(reference, session)
    assert stats.n_tokens == 256
    assert stats.min_cosine >= EMBEDDING_MIN_COSINE, stats
    # same scale: a tower that lost its norms or the sqrt(2048) factor fails here, not on cosine
    assert stats.max_abs_diff < 0.05 * stats.reference_std, stats


@pytest.mark.slow
def test_embeddings_see_the_image(reference, tiny_mm_text_gguf, tiny_mm_mmproj):
    """A different image must not match: the comparison is not vacuous."""
    with MtmdSession(tiny_mm_text_gguf(False), tiny_mm_mmproj("f16").path) as session:
        other = session.image_embeddings(synthetic_image(768, seed=1)[::-1].copy())
    stats = embedding_parity(reference.image_features(synthetic_image(768)), other)
    assert stats.min_cosine < 0.99, stats


@pytest.mark.slow
def test_image_prompt_logits_agree_with_exact_tokens(reference, tiny_mm_text_gguf, tiny_mm_mmproj):
    projector = tiny_mm_mmproj("f16").path
    with MtmdSession(tiny_mm_text_gguf(True), projector) as session:
        exact = image_prompt_parity(reference, session)
    with MtmdSession(tiny_mm_text_gguf(False), projector) as session:
        plain = image_prompt_parity(reference, session)
    drift = (f"without --exact-mm-tokens: top-1 after the image {plain.after_image.top1_agreement:.3f}, "
             f"mean KLD {plain.after_image.mean_kld:.3g}, max |dlogit| {plain.after_image.max_abs_dlogit:.3g} "
             f"(<end_of_image> row {plain.first_after_image_max_abs_dlogit:.3g}); with it: "
             f"top-1 {exact.after_image.top1_agreement:.3f}, mean KLD {exact.after_image.mean_kld:.3g}, "
             f"max |dlogit| {exact.after_image.max_abs_dlogit:.3g}")
    assert exact.n_image_tokens == 256
    assert exact.after_image.top1_agreement == 1.0, drift
    assert exact.before_image.top1_agreement == 1.0, drift
    assert exact.after_image.max_abs_dlogit < 0.01 * exact.after_image.logit_std, drift
    # the fix is what makes the difference: the text before the image was never affected
    assert plain.before_image.max_abs_dlogit == pytest.approx(exact.before_image.max_abs_dlogit, rel=1e-3)
    assert plain.after_image.mean_kld > 100 * max(exact.after_image.mean_kld, 1e-9), drift


@pytest.mark.slow
def test_audio_round_trip_f16(tiny_mm_checkpoint, tiny_mm_mmproj):
    result = audio_round_trip(tiny_mm_checkpoint, tiny_mm_mmproj("f16").path)
    assert "llama.cpp has no Gemma 3n audio graph" in result.note
    assert set(result.per_waveform) == {"harmonic_tone", "log_chirp", "am_tone_in_noise"}
    assert all(p.n_tokens > 0 for p in result.per_waveform.values())
    assert result.max_feature_diff == 0.0  # the stored feature settings rebuild the same mel features
    assert result.min_cosine >= AUDIO_F16_MIN_COSINE, result.to_dict()


@pytest.mark.slow
def test_audio_round_trip_q8_0(tiny_mm_checkpoint, tiny_mm_mmproj):
    result = audio_round_trip(tiny_mm_checkpoint, tiny_mm_mmproj("q8_0").path)
    assert result.min_cosine >= AUDIO_Q8_0_MIN_COSINE, result.to_dict()
    assert result.min_cosine < 1.0  # q8_0 really quantized the audio matrices


@pytest.mark.slow
def test_single_file_entry_points(tiny_mm_checkpoint, tiny_mm_text_gguf, tiny_mm_mmproj):
    """What `validate --image/--audio` calls: any image size, any sample rate."""
    image = synthetic_image(500, seed=2)[:, :400].copy()  # not square, not 768
    result = image_parity(tiny_mm_text_gguf(True), tiny_mm_mmproj("f16").path, tiny_mm_checkpoint, image)
    assert result.embedding_cosine >= EMBEDDING_MIN_COSINE
    assert result.prompt_top1 == 1.0 and result.prompt_kld < 1e-4
    t = np.arange(2 * 22050) / 22050
    audio = audio_parity(tiny_mm_mmproj("f16").path, tiny_mm_checkpoint, 0.5 * np.sin(2 * np.pi * 300 * t), 22050)
    assert audio.n_tokens > 0  # no text model given: the reference path
    assert audio.embedding_cosine >= AUDIO_F16_MIN_COSINE
    assert "no Gemma 3n audio graph" in audio.note
