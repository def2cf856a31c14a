"""tiny-text converted to each output type runs in llama.cpp and matches transformers."""

from __future__ import annotations

import pytest

from conftest import llama_logits
from gemma3n_gguf.convert import convert
from gemma3n_gguf.validate.metrics.bounds import PARITY_BOUNDS
from gemma3n_gguf.validate.metrics.parity import parity_stats

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("outtype", ["f32", "f16", "bf16", "q8_0"])
def test_converted_logits_match_transformers(outtype, tiny_text_gguf_factory, parity_ids, tiny_text_reference_logits):
    stats = parity_stats(tiny_text_reference_logits, llama_logits(tiny_text_gguf_factory(outtype), parity_ids))
    assert stats.n_confident > 300
    assert PARITY_BOUNDS[outtype].violations(stats) == [], stats.to_dict()


def test_google_style_checkpoint_matches_too(tiny_text_google_checkpoint, tmp_path, parity_ids, tiny_text_reference_logits):
    # same seed, same weights: only the saving style (K/V of shared layers, legacy config keys) differs
    result = convert(tiny_text_google_checkpoint, tmp_path / "g.gguf", outtype="f32")
    assert result.plan.synthesised == []
    stats = parity_stats(tiny_text_reference_logits, llama_logits(result.path, parity_ids))
    assert PARITY_BOUNDS["f32"].violations(stats) == [], stats.to_dict()


def test_transformers5_checkpoint_gets_shared_kv_synthesised(tiny_text_checkpoint, tiny_text_f32_gguf):
    from gguf import GGUFReader

    names = {t.name for t in GGUFReader(tiny_text_f32_gguf).tensors}
    for layer in (20, 21):
        assert {f"blk.{layer}.attn_k.weight", f"blk.{layer}.attn_v.weight", f"blk.{layer}.attn_k_norm.weight"} <= names
    assert len(names) == 22 * 24 + 7
