"""The layer-streamed reference equals the in-memory transformers model on every tiny preset.

Windows are longer than the presets' 64-token sliding window, several of them go through the
layers together (groups of two and a last group of one), the LM head is projected in several
vocabulary chunks, and the windows hold multimodal token ids (embedded by embed_vision /
embed_audio) next to text ids. tiny-text and tiny-text-256 have KV-shared layers.
"""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest

from gemma3n_gguf.reference.runners import TransformersRunner
from gemma3n_gguf.reference.streamed import StreamedRunner, window_activation_bytes
from gemma3n_gguf.reference.streamed.weights import CheckpointWeights

N_CTX = 96
FIRST_ROW = N_CTX // 2
TEXT_VOCAB = 1024  # every tiny preset: 1024 text ids, then 128 vision and 128 audio ids
TOLERANCE = 1e-5  # of the logits' standard deviation (issue 11)


def _windows(n_windows: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    windows = []
    for index in range(n_windows):
        ids = rng.integers(10, TEXT_VOCAB, N_CTX)
        ids[0] = 2  # BOS
        if index == 1:
            ids[10:14] = [TEXT_VOCAB + 1, TEXT_VOCAB + 60, TEXT_VOCAB + 128 + 3, TEXT_VOCAB + 255]
        windows.append(ids)
    return windows


def _streamed(checkpoint, **options) -> StreamedRunner:
    """A runner whose groups hold two windows and whose LM head comes in chunks of 200 rows."""
    weights = CheckpointWeights(checkpoint)
    hidden = weights.text_config.hidden_size
    group_bytes = 2 * window_activation_bytes(weights.text_config, N_CTX)
    return StreamedRunner(checkpoint, group_bytes=group_bytes, vocab_chunk_bytes=200 * 4 * hidden, **options)


@pytest.fixture(params=["tiny-text", "tiny-text-google", "tiny-text-256", "tiny-mm"])
def checkpoint(request):
    fixture = {
        "tiny-text": "tiny_text_checkpoint",
        "tiny-text-google": "tiny_text_google_checkpoint",  # K/V of the shared layers stored, unused
        "tiny-text-256": "tiny_text_256_checkpoint",
        "tiny-mm": "tiny_mm_checkpoint",
    }[request.param]
    return request.getfixturevalue(fixture)


def test_streamed_logits_equal_the_in_memory_model(checkpoint):
    windows = _windows()
    memory = list(TransformersRunner(checkpoint).iter_window_logits(windows, first_row=FIRST_ROW))
    runner = _streamed(checkpoint)
    assert runner.group_size(N_CTX) == 2
    streamed = list(runner.iter_window_logits(windows, first_row=FIRST_ROW))
    assert len(streamed) == len(memory) == 3
    for expected, got in zip(memory, streamed):
        assert got.shape == expected.shape == (N_CTX - FIRST_ROW, runner.n_vocab)
        assert np.abs(got - expected).max() <= TOLERANCE * expected.std()


def test_kv_sharing_is_active_where_claimed(tiny_text_checkpoint, tiny_text_256_checkpoint):
    for checkpoint, shared in ((tiny_text_checkpoint, 2), (tiny_text_256_checkpoint, 1)):
        text = json.loads((checkpoint / "config.json").read_text())["text_config"]
        assert text["num_kv_shared_layers"] == shared


def test_one_decoder_layer_resident_at_a_time(tiny_text_checkpoint):
    loaded: list[int] = []
    alive: list[weakref.ref] = []

    def on_layer_loaded(index, layer):
        gc.collect()
        assert all(ref() is None for ref in alive), "the previous layer is still in memory"
        loaded.append(index)
        alive.append(weakref.ref(layer))

    runner = _streamed(tiny_text_checkpoint, on_layer_loaded=on_layer_loaded)
    list(runner.iter_window_logits(_windows(2), first_row=FIRST_ROW))
    assert loaded == list(range(22))  # two windows, one group: every layer read once


def test_gathered_rows_are_the_tables_rows(tiny_text_checkpoint):
    weights = CheckpointWeights(tiny_text_checkpoint)
    ids = np.array([0, 1, 2, 7, 8, 500, 1023])
    table = weights.read(weights.ple_name)
    np.testing.assert_array_equal(weights.gather_rows(weights.ple_name, ids), table[ids])


def test_windows_of_different_lengths_are_refused(tiny_text_checkpoint):
    from gemma3n_gguf.core.errors import ValidationError

    runner = _streamed(tiny_text_checkpoint)
    with pytest.raises(ValidationError, match="one length"):
        next(runner.iter_window_logits([np.arange(10, 40), np.arange(10, 50)]))


def test_image_features_and_prompt_logits_equal_the_full_model(tiny_mm_checkpoint):
    """The image checks' reference: the vision tower alone, and the streamed text model after it."""
    import torch
    from transformers import Gemma3nForConditionalGeneration

    from gemma3n_gguf.validate.multimodal.checks import VisionReference, synthetic_image
    from gemma3n_gguf.validate.multimodal.mtmd import IMAGE_POSITION

    reference = VisionReference(tiny_mm_checkpoint)
    image = synthetic_image(reference.vision.image_size)
    tokens = np.array([2, 50, 60, *[IMAGE_POSITION] * 256, 70, 80, 90])
    full = Gemma3nForConditionalGeneration.from_pretrained(tiny_mm_checkpoint, dtype=torch.float32,
                                                           attn_implementation="eager").eval()
    pixels = reference.pixel_values(image)
    ids = torch.from_numpy(np.where(tokens == IMAGE_POSITION, full.config.image_token_id, tokens))[None]
    with torch.inference_mode():
        features = full.get_image_features(pixels).pooler_output[0].numpy()
        logits = full(input_ids=ids, pixel_values=pixels).logits[0].numpy()
    assert np.abs(reference.image_features(image) - features).max() <= TOLERANCE * features.std()
    assert np.abs(reference.logits(tokens, image) - logits).max() <= TOLERANCE * logits.std()
