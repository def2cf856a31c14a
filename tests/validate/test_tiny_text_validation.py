"""Reference vs candidate on the project's tiny Gemma 3n fixtures.

Needs the fixtures ``tiny_text_checkpoint`` (HF directory) and ``tiny_text_f32_gguf`` (the
same model converted to an f32 GGUF) from tests/conftest.py. Pass criteria from
parity-and-fixtures.md §3: mean KLD <= 1e-4, top-1 >= 0.99 where the reference's top-2 gap
exceeds 0.1, max |Δlogit| <= 0.05 x logit std.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemma3n_gguf.reference.identity import checkpoint_fingerprint
from gemma3n_gguf.validate.metrics.kld import KLDAccumulator, parity_stats
from gemma3n_gguf.reference.cache import ReferenceCache, reference_key
from gemma3n_gguf.reference.runners import TransformersRunner
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
from gemma3n_gguf.reference.windows import plan_windows

pytestmark = pytest.mark.slow

N_CTX = 256


def _random_text_ids(checkpoint, n_tokens: int, seed: int = 0) -> np.ndarray:
    """Plain text-token ids: below the PLE table (multimodal ids are out) and above specials."""
    config = json.loads((checkpoint / "config.json").read_text())
    text = config.get("text_config", config)
    limit = min(text["vocab_size"], text.get("vocab_size_per_layer_input", text["vocab_size"]))
    return np.random.default_rng(seed).integers(4, limit, n_tokens)


@pytest.fixture(scope="module")
def reference(tiny_text_checkpoint):
    return TransformersRunner(tiny_text_checkpoint)


@pytest.fixture(scope="module")
def candidate(tiny_text_f32_gguf):
    with LlamaCppRunner(tiny_text_f32_gguf, n_ctx=N_CTX) as runner:
        yield runner


def test_reference_loads_the_tiny_checkpoint(reference, tiny_text_checkpoint):
    config = json.loads((tiny_text_checkpoint / "config.json").read_text())
    assert reference.n_vocab == config.get("text_config", config)["vocab_size"]
    (logits,) = reference.iter_window_logits([_random_text_ids(tiny_text_checkpoint, 16)])
    assert logits.shape == (16, reference.n_vocab)
    assert np.isfinite(logits).all()


def test_candidate_and_reference_agree_on_vocabulary_and_bos(reference, candidate):
    assert candidate.n_vocab == reference.n_vocab
    assert candidate.bos_id == reference.bos_id


def test_f32_gguf_matches_the_reference_through_the_cache(
    reference, candidate, tiny_text_checkpoint, tmp_path
):
    plan = plan_windows(
        _random_text_ids(tiny_text_checkpoint, 2 * N_CTX), N_CTX, bos_id=reference.bos_id
    )
    cache = ReferenceCache(tmp_path)
    key = reference_key(checkpoint_fingerprint(tiny_text_checkpoint), plan, reference.settings)
    first = plan.windows[0].first_scored
    exact_rows = []
    with cache.create(key, plan, reference.n_vocab, reference.settings) as writer:
        for window, logits in zip(plan, reference.iter_window_logits(
                plan.evaluated_windows(), first_row=first)):
            rows = window.scored_logits(logits, first_row=first)
            writer.add_window(rows)
            exact_rows.append(rows)
    cached = cache.load(key)
    assert cached is not None

    kld, cand_rows = KLDAccumulator(), []
    candidate_logits = candidate.iter_window_logits(plan.evaluated_windows(), first_row=first)
    for window, ref_rows, logits in zip(plan, cached.iter_windows(), candidate_logits):
        rows = window.scored_logits(logits, first_row=first)
        kld.add(ref_rows, rows, window.targets)
        cand_rows.append(rows)
    stats = kld.finish()
    parity = parity_stats(np.concatenate(exact_rows), np.concatenate(cand_rows), gap=0.1)

    assert stats.n_tokens == 2 * (N_CTX - 1 - N_CTX // 2)
    assert stats.kld_mean.value <= 1e-4, stats.to_dict()
    assert parity.confident_top1_agreement >= 0.99, parity.to_dict()
    assert parity.max_abs_dlogit_rel <= 0.05, parity.to_dict()
    assert parity.mean_max_abs_dlogit_rel <= 0.01, parity.to_dict()
