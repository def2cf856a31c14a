"""The audio checks' reference (AudioReference: the audio tower alone, then the layer-streamed text
model) equals the whole transformers model on tiny-mm: the soft tokens its text model gets for a
clip, padding included, and the logits of a prompt holding the clip."""

from __future__ import annotations

import numpy as np
import pytest

from gemma3n_gguf.validate.multimodal.audio_runtime import AudioReference
from gemma3n_gguf.validate.multimodal.mtmd import IMAGE_POSITION

TOLERANCE = 1e-5  # of the expected values' standard deviation, as for images (tests/reference/test_streamed.py)
SOFT_TOKENS = 188  # tiny-mm's audio_soft_tokens_per_image
SAMPLE_RATE = 16000


def clip(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (150 * t + 300 * t**2))
    return (chirp + np.random.default_rng(3).normal(0, 0.05, t.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tiny_mm_checkpoint):
    return AudioReference(tiny_mm_checkpoint)


@pytest.fixture(scope="module")
def whole_model(tiny_mm_checkpoint, reference):
    """The expected values, from Gemma3nForConditionalGeneration loaded whole: the rows its text
    model receives at the audio positions (captured from its forward), and its logits."""
    import torch
    from transformers import Gemma3nForConditionalGeneration

    model = Gemma3nForConditionalGeneration.from_pretrained(tiny_mm_checkpoint, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    tokens = np.array([2, 50, 60, *[IMAGE_POSITION] * SOFT_TOKENS, 70, 80, 90])
    ids = np.where(tokens == IMAGE_POSITION, model.config.audio_token_id, tokens)
    features, valid = reference.features(clip())
    captured = {}

    def capture(_module, _args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"][0].clone()

    hook = model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    with torch.inference_mode():
        logits = model(input_ids=torch.from_numpy(ids)[None], input_features=torch.from_numpy(features)[None],
                       input_features_mask=torch.from_numpy(valid)[None]).logits[0].numpy()
        tower = model.model.get_audio_features(torch.from_numpy(features)[None], torch.from_numpy(~valid)[None])
    hook.remove()
    return {
        "tokens": tokens,
        "soft_rows": captured["embeds"][torch.from_numpy(ids == model.config.audio_token_id)].numpy(),
        "tower_rows": tower.pooler_output[0][~tower.audio_mel_mask[0]].numpy(),
        "logits": logits,
    }


def test_soft_tokens_equal_what_the_whole_model_feeds_its_text_model(reference, whole_model):
    soft = reference.soft_tokens(clip())
    expected = whole_model["soft_rows"]
    assert soft.embeddings.shape == expected.shape == (SOFT_TOKENS, expected.shape[1])
    assert np.abs(soft.embeddings - expected).max() <= TOLERANCE * expected.std()
    n_tower = len(whole_model["tower_rows"])
    assert 0 < n_tower < SOFT_TOKENS  # a 3-s clip: the tower's tokens, then padding
    assert soft.from_tower.sum() == n_tower and soft.from_tower[:n_tower].all()
    padding_rows = np.tile(soft.padding_embedding, (SOFT_TOKENS - n_tower, 1))
    np.testing.assert_array_equal(soft.embeddings[~soft.from_tower], padding_rows)
    assert not np.allclose(soft.padding_embedding, expected[0], atol=1e-3)  # padding is not a tower row


def test_audio_features_equal_get_audio_features(reference, whole_model):
    expected = whole_model["tower_rows"]
    got = reference.audio_features(clip())
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * expected.std()


def test_audio_prompt_logits_equal_the_whole_model(reference, whole_model):
    expected = whole_model["logits"]
    assert np.abs(reference.logits(whole_model["tokens"], clip()) - expected).max() <= TOLERANCE * expected.std()
    after = np.arange(len(expected) - 3, len(expected))  # what the runtime comparison asks for
    got = reference.logits(whole_model["tokens"], clip(), after)
    assert got.shape == (3, expected.shape[1])
    assert np.abs(got - expected[after]).max() <= TOLERANCE * expected.std()


def test_only_the_audio_tower_is_loaded(reference):
    model = reference._runner._model
    assert all(p.device.type == "cpu" for p in model.audio_tower.parameters())
    assert all(p.is_meta for p in model.vision_tower.parameters())  # never read from the checkpoint
