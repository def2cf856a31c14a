"""The validation pipeline on tiny-text: f32 parity, the protocol against a direct computation,
and one reference pass for many candidates.

Quantized files come from the project's k-quant engine (``conftest.quantize_checkpoint``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import PIPELINE_CHUNKS
from gemma3n_gguf.reference import runners
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
from gemma3n_gguf.reference.evaltext import default_eval_text
from gemma3n_gguf.validate.pipeline import Validator, validate

pytestmark = pytest.mark.slow

N_CTX = 512
BOS = 2
SCORED_PER_WINDOW = N_CTX - 1 - N_CTX // 2  # 255


def test_f32_gguf_matches_the_reference(tiny_text_checkpoint, tiny_text_f32_gguf, shared_reference_cache):
    report = validate(tiny_text_f32_gguf, tiny_text_checkpoint, chunks=PIPELINE_CHUNKS,
                      cache_dir=shared_reference_cache)
    assert report.kld.n_tokens == PIPELINE_CHUNKS * SCORED_PER_WINDOW
    assert report.kld.kld_mean.value <= 1e-4, report.to_dict()["kld"]
    assert report.confident_top1.n_confident >= 0.5 * report.kld.n_tokens
    assert report.confident_top1.agreement >= 0.99, report.confident_top1
    assert report.tokenizer.agree
    assert report.tokenizer.source.startswith("reference")
    assert not report.vocab_aligned and report.warnings == ()
    float32_rows = report.kld.n_tokens * report.n_vocab_compared * 4
    assert Path(report.reference.cache_file).stat().st_size < float32_rows / 2  # compact cache


def _direct_scores(reference_logits, candidate_logits, window):
    """Per scored token: KLD over log p_ref > -16, NLL of both, top-1 agreement; float64 numpy."""
    rows = slice(N_CTX // 2, N_CTX - 1)
    targets = np.asarray(window[N_CTX // 2 + 1:])
    ref = reference_logits[rows].astype(np.float64)
    cand = candidate_logits[rows].astype(np.float64)
    ref_lp = ref - np.logaddexp.reduce(ref, axis=1, keepdims=True)
    cand_lp = cand - np.logaddexp.reduce(cand, axis=1, keepdims=True)
    kept = ref_lp > -16
    kld = np.where(kept, np.exp(ref_lp) * (ref_lp - cand_lp), 0.0).sum(axis=1)
    picked = np.arange(len(targets))
    return kld, -ref_lp[picked, targets], -cand_lp[picked, targets], ref.argmax(1) == cand.argmax(1)


def test_pipeline_reproduces_a_direct_computation(tiny_text_checkpoint, tiny_text_quant, tmp_path):
    """Windows cut by hand (first token -> BOS, second half scored) and scored with plain numpy
    give the pipeline's numbers, up to the cache's rounding of the reference."""
    from transformers import AutoTokenizer

    model = tiny_text_quant("Q8_0")
    ids = AutoTokenizer.from_pretrained(tiny_text_checkpoint)(default_eval_text().text)["input_ids"]
    windows = [[BOS] + ids[i * N_CTX + 1:(i + 1) * N_CTX] for i in range(2)]
    reference = runners.TransformersRunner(tiny_text_checkpoint)
    with LlamaCppRunner(model, n_ctx=N_CTX) as candidate:
        parts = [_direct_scores(r, c, w) for r, c, w in zip(
            reference.iter_window_logits(windows), candidate.iter_window_logits(windows), windows)]
    kld, nll_ref, nll_cand, same = (np.concatenate(column) for column in zip(*parts))

    report = validate(model, tiny_text_checkpoint, chunks=2, cache_dir=tmp_path)
    assert report.kld.n_tokens == len(kld) == 2 * SCORED_PER_WINDOW
    assert report.kld.kld_mean.value == pytest.approx(kld.mean(), rel=0.01)
    assert report.kld.kld_mean.value > 1e-3  # a real quantization error, not a trivial match
    assert report.kld.ppl_reference.value == pytest.approx(np.exp(nll_ref.mean()), rel=1e-4)
    assert report.kld.ppl_candidate.value == pytest.approx(np.exp(nll_cand.mean()), rel=1e-4)
    assert abs(report.kld.same_top1.value - same.mean()) <= 2 / len(same)


@pytest.fixture
def counted_reference_passes(monkeypatch):
    """Counts every transformers pass (calls of TransformersRunner.iter_window_logits)."""
    calls: list[int] = []
    original = runners.TransformersRunner.iter_window_logits

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(runners.TransformersRunner, "iter_window_logits", counting)
    return calls


def test_candidates_share_one_reference_pass(
    tiny_text_checkpoint, tiny_text_f32_gguf, tiny_text_quant, tmp_path, counted_reference_passes
):
    validator = Validator(tiny_text_checkpoint, chunks=1, cache_dir=tmp_path)
    first = validator.validate(tiny_text_f32_gguf)
    second = validator.validate(tiny_text_quant("Q8_0"))
    assert len(counted_reference_passes) == 1
    assert validator.reference_runs == 1
    assert (first.reference.cached, second.reference.cached) == (False, True)
    assert second.kld.kld_mean.value > first.kld.kld_mean.value  # each candidate really scored

    # Another validator (another process, another day) finds the pass on disk.
    third = Validator(tiny_text_checkpoint, chunks=1, cache_dir=tmp_path).validate(tiny_text_quant("Q2_K"))
    assert len(counted_reference_passes) == 1 and third.reference.cached

    # Other token ids are another key: a second window means a new pass.
    Validator(tiny_text_checkpoint, chunks=2, cache_dir=tmp_path).validate(tiny_text_f32_gguf)
    assert len(counted_reference_passes) == 2

