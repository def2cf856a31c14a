"""Every official configuration sliced from tiny-e4b, to a checkpoint and to a GGUF, and checked
against computations that do not go through the slicer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemma3n_gguf.slice.configs import OFFICIAL_CONFIGS
from matformer.independent import cut_independently, gguf_tensors, read_checkpoint, text_logits

pytestmark = pytest.mark.slow

SLUGS = [c.slug for c in OFFICIAL_CONFIGS]
FULL, HALF = 2048, 1024  # tiny-e4b's FFN width, and half of it


@pytest.fixture(scope="module")
def ids():
    rng = np.random.default_rng(7)
    return np.concatenate([[2], rng.integers(10, 1024, 159)]).astype(np.int64)


@pytest.fixture(scope="module")
def original(tiny_e4b):
    return read_checkpoint(tiny_e4b)


@pytest.mark.parametrize("slug", SLUGS)
def test_hf_slice_equals_the_original_cut_in_memory(slug, official_slices, original, ids):
    config = next(c for c in OFFICIAL_CONFIGS if c.slug == slug)
    hf_dir, _, _ = official_slices(slug)
    text, tensors = read_checkpoint(hf_dir)
    # the table, scaled by ratio: full = 2048, half = 1024
    kept = [i for i in range(35) if i not in config.skipped]
    widths = [FULL if pos in config.full_layers else HALF for pos in range(len(kept))]
    assert text["num_hidden_layers"] == len(kept) and text["intermediate_size"] == widths
    assert len(text["layer_types"]) == len(kept)
    expected_text, expected = cut_independently(*original, kept, widths)
    for key in ("layer_types", "num_kv_shared_layers", "activation_sparsity_pattern"):
        assert text[key] == expected_text[key], key
    assert set(tensors) == set(expected)
    got = text_logits(text, tensors, ids)
    want = text_logits(expected_text, expected, ids)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("slug", SLUGS)
def test_gguf_read_back_matches_the_hf_slice(slug, official_slices, ids):
    hf_dir, gguf, result = official_slices(slug)
    text, tensors = read_checkpoint(hf_dir)
    widths, read_back = gguf_tensors(gguf, {name: tuple(t.shape) for name, t in tensors.items()})
    assert widths == text["intermediate_size"]
    np.testing.assert_allclose(text_logits(dict(text, intermediate_size=widths), read_back, ids),
                               text_logits(text, tensors, ids), rtol=0, atol=1e-5)
    # effective parameters: what transformers counts without the embedding tables, plus the K/V
    # of KV-shared layers that transformers 5 leaves out (llama.cpp loads them)
    shared_kv = text["num_kv_shared_layers"] * (2 * text["num_key_value_heads"] * text["head_dim"] * text["hidden_size"]
                                                + text["head_dim"])
    counted = sum(t.numel() for name, t in tensors.items() if "embed_tokens" not in name)
    assert result.effective_parameters == counted + shared_kv


def test_transformers_loads_the_hf_slice_as_written(official_slices):
    from transformers import AutoConfig

    hf_dir, _, _ = official_slices("e2b")
    config = AutoConfig.from_pretrained(hf_dir)
    assert config.text_config.num_hidden_layers == 30
    assert config.text_config.num_kv_shared_layers == 10
    assert json.loads((hf_dir / "config.json").read_text())["vision_config"]  # the towers are kept
    assert (hf_dir / "tokenizer.model").is_file()


def test_google_saved_checkpoint_keeps_the_shared_kv_renumbered(tiny_e4b_google, tmp_path):
    from gemma3n_gguf.slice import slice_model
    from safetensors import safe_open

    out = slice_model(tiny_e4b_google, tmp_path / "e2b", config="e2b").path
    names = set()
    for shard in out.glob("*.safetensors"):
        with safe_open(shard, "np") as f:
            names |= set(f.keys())
    shared = {n for n in names if ".self_attn.k_proj." in n}
    assert {f"model.language_model.layers.{i}.self_attn.k_proj.weight" for i in range(30)} == shared
    # original layer 25 became layer 20: same K projection
    _, original = read_checkpoint(tiny_e4b_google)
    _, sliced = read_checkpoint(out)
    key = "model.language_model.layers.{}.self_attn.k_proj.weight"
    assert (sliced[key.format(20)] == original[key.format(25)]).all()
