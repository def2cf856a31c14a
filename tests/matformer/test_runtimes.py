"""Slices in llama.cpp: uniform widths in the stock runtime, mixed widths in the patched one,
within the f32 parity bounds against the HF slice in transformers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import llama_logits
from gemma3n_gguf.reference.runners import TransformersRunner
from gemma3n_gguf.validate.metrics.bounds import PARITY_BOUNDS
from gemma3n_gguf.validate.metrics.parity import parity_stats

pytestmark = pytest.mark.slow

F32 = PARITY_BOUNDS["f32"]


def _reference(hf_dir, ids):
    return next(TransformersRunner(hf_dir).iter_window_logits([ids]))


def _uniform_slice(tiny_e4b, tmp_path):
    from gemma3n_gguf.slice import WriteOptions, slice_model

    hf = slice_model(tiny_e4b, tmp_path / "u1536", ffn_widths="1536*35").path
    gguf = slice_model(tiny_e4b, tmp_path / "u1536.gguf", ffn_widths="1536*35", options=WriteOptions(outtype="f32"))
    return hf, gguf


def test_official_e2b_runs_in_stock_llama_cpp(official_slices, parity_ids):
    hf_dir, gguf, result = official_slices("e2b")
    assert [v.runs for v in result.verdicts] == [True, True]
    stats = parity_stats(_reference(hf_dir, parity_ids), llama_logits(gguf, parity_ids))
    assert F32.violations(stats) == [], stats.to_dict()


def test_another_uniform_slice_runs_in_stock_llama_cpp(tiny_e4b, tmp_path, parity_ids):
    hf_dir, result = _uniform_slice(tiny_e4b, tmp_path)
    assert result.verdicts[0].runs
    stats = parity_stats(_reference(hf_dir, parity_ids), llama_logits(result.path, parity_ids))
    assert F32.violations(stats) == [], stats.to_dict()


def test_mixed_widths_fail_in_stock_llama_cpp_as_the_verdict_says(official_slices):
    _, gguf, result = official_slices("e2.54b-layer")
    stock = result.verdicts[0]
    assert not stock.runs and "FFN widths differ" in stock.reasons[0]
    with pytest.raises(Exception):
        llama_logits(gguf, np.array([2, 10, 11]))


# -- the patched runtime (built once from the pinned sdist, cached) -------------------------------

_RUN = """
import sys, numpy as np
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
ids = np.load(sys.argv[2])
with LlamaCppRunner(sys.argv[1], n_ctx=512) as runner:
    np.save(sys.argv[3], next(runner.iter_window_logits([ids])))
"""


def _patched_logits(lib_dir, gguf, ids, tmp_path):
    from gemma3n_gguf.runtime.build import runtime_env

    np.save(tmp_path / "ids.npy", ids)
    out = tmp_path / f"{gguf.stem}-logits.npy"
    subprocess.run([sys.executable, "-c", _RUN, str(gguf), str(tmp_path / "ids.npy"), str(out)],
                   env=runtime_env(lib_dir), check=True, timeout=600)
    return np.load(out)


def test_mixed_width_slice_runs_in_the_patched_runtime(patched_runtime, official_slices, parity_ids, tmp_path):
    hf_dir, gguf, _ = official_slices("e2.54b-layer")
    stats = parity_stats(_reference(hf_dir, parity_ids), _patched_logits(patched_runtime, gguf, parity_ids, tmp_path))
    assert F32.violations(stats) == [], json.dumps(stats.to_dict())


def test_the_patch_leaves_uniform_widths_unchanged(patched_runtime, official_slices, parity_ids, tmp_path):
    _, gguf, _ = official_slices("e2b")
    np.testing.assert_array_equal(_patched_logits(patched_runtime, gguf, parity_ids, tmp_path),
                                  llama_logits(gguf, parity_ids))
