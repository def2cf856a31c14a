"""The reference runner on a tiny random Gemma 3n text model built here (no lead fixture)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.reference.runners import TransformersRunner

pytestmark = pytest.mark.slow

N_VOCAB = 512


@pytest.fixture(scope="module")
def tiny_gemma3n_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

    config = Gemma3nTextConfig(
        vocab_size=N_VOCAB, vocab_size_per_layer_input=N_VOCAB, hidden_size=64,
        hidden_size_per_layer_input=8, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16,
        num_kv_shared_layers=0, laurel_rank=8, activation_sparsity_pattern=[0.0] * 4,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-gemma3n")
    Gemma3nForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def runner(tiny_gemma3n_dir):
    return TransformersRunner(tiny_gemma3n_dir, n_threads=1)


def _windows(count: int = 2, length: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, N_VOCAB, length) for _ in range(count)]


def test_shape_vocabulary_and_bos(runner):
    first, second = runner.iter_window_logits(_windows())
    assert first.shape == (32, N_VOCAB) and first.dtype == np.float32
    assert np.isfinite(first).all()
    assert not np.array_equal(first, second)
    assert runner.n_vocab == N_VOCAB
    assert runner.bos_id == 2
    assert runner.settings["dtype"] == "float32"


def test_row_i_is_the_prediction_after_token_i(runner):
    (window,) = _windows(count=1, seed=1)
    changed = window.copy()
    changed[20] = 3 if window[20] != 3 else 4
    a, b = runner.iter_window_logits([window, changed])
    np.testing.assert_array_equal(a[:20], b[:20])
    assert not np.allclose(a[20], b[20])


def test_first_row_keeps_only_the_tail(runner):
    windows = _windows(seed=2)
    full = list(runner.iter_window_logits(windows))
    tails = list(runner.iter_window_logits(windows, first_row=16))
    for whole, tail in zip(full, tails):
        assert tail.shape == (16, N_VOCAB)
        np.testing.assert_allclose(whole[16:], tail, rtol=0, atol=1e-5)


def test_other_architectures_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match="'llama'"):
        TransformersRunner(tmp_path)
