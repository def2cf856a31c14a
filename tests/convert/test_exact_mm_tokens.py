"""--exact-mm-tokens: hard-token rows as transformers embeds them, PLE padding, untied LM head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGUFReader


pytestmark = pytest.mark.slow


def _tensor(path, name):
    found = [t for t in GGUFReader(path).tensors if t.name == name]
    return np.array(found[0].data) if found else None


@pytest.fixture(scope="module")
def hf_model(tiny_mm_checkpoint):
    from transformers import Gemma3nForConditionalGeneration

    return Gemma3nForConditionalGeneration.from_pretrained(tiny_mm_checkpoint, dtype=torch.float32).eval()


def test_hard_token_rows_are_what_transformers_embeds(hf_model, tiny_mm_text_gguf):
    path = tiny_mm_text_gguf(True)
    config = hf_model.config
    token_embd = _tensor(path, "token_embd.weight")
    scale = np.sqrt(config.text_config.hidden_size)  # llama.cpp multiplies every token row by it
    for embedder in (hf_model.model.embed_vision, hf_model.model.embed_audio):
        ids = torch.arange(embedder.vocab_offset, embedder.vocab_offset + embedder.vocab_size)
        with torch.inference_mode():
            expected = embedder(input_ids=ids).numpy()
        np.testing.assert_allclose(token_embd[ids.numpy()] * scale, expected, atol=2e-5)
    text_rows = config.text_config.vocab_size_per_layer_input
    embed_tokens = hf_model.model.language_model.embed_tokens.weight.detach().numpy()
    np.testing.assert_array_equal(token_embd[:text_rows], embed_tokens[:text_rows])


def test_lm_head_stays_the_original_embedding(hf_model, tiny_mm_text_gguf):
    output = _tensor(tiny_mm_text_gguf(True), "output.weight")
    assert output is not None, "an untied output.weight must be written"
    np.testing.assert_array_equal(output, hf_model.lm_head.weight.detach().numpy())


def test_padded_ple_rows_copy_row_0(hf_model, tiny_mm_text_gguf):
    """transformers looks ids past the PLE table up at row 0 (get_per_layer_inputs)."""
    ple = _tensor(tiny_mm_text_gguf(True), "per_layer_token_embd.weight")
    table = hf_model.model.language_model.embed_tokens_per_layer.weight.detach().numpy()
    assert ple.shape[0] == hf_model.config.text_config.vocab_size > table.shape[0]
    np.testing.assert_array_equal(ple[: table.shape[0]], table)
    np.testing.assert_array_equal(ple[table.shape[0]:], np.broadcast_to(table[0], ple[table.shape[0]:].shape))


def test_without_the_option_the_file_stays_tied(hf_model, tiny_mm_text_gguf):
    path = tiny_mm_text_gguf(False)
    assert _tensor(path, "output.weight") is None
    embed_tokens = hf_model.model.language_model.embed_tokens.weight.detach().numpy()
    np.testing.assert_array_equal(_tensor(path, "token_embd.weight"), embed_tokens)
