"""Nothing else moved: in the patched runtime (both patches), tiny-text's f32 logits and tiny-mm's image
embeddings meet the same bounds as in stock llama.cpp (tests/convert/test_parity.py,
tests/validate/test_multimodal.py), and the libraries that ran are the patched ones."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gemma3n_gguf.runtime.build import runtime_env
from gemma3n_gguf.validate.metrics.bounds import PARITY_BOUNDS
from gemma3n_gguf.validate.metrics.parity import parity_stats
from gemma3n_gguf.validate.multimodal.checks import VisionReference, embedding_parity, synthetic_image
from tests.validate.test_multimodal import EMBEDDING_MIN_COSINE  # the stock runtime's bound, not a copy

pytestmark = pytest.mark.slow

# Run in a fresh process: llama-cpp-python picks its libraries when it is first imported.
CANDIDATE = """
import sys
import numpy as np
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
from gemma3n_gguf.validate.multimodal.checks import synthetic_image
from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession

text_gguf, ids_path, mm_text, mm_projector, out = sys.argv[1:]
with LlamaCppRunner(text_gguf, n_ctx=512) as runner:
    logits = next(runner.iter_window_logits([np.load(ids_path)]))
with MtmdSession(mm_text, mm_projector) as session:
    image = session.image_embeddings(synthetic_image(768))
maps = [line.split()[-1] for line in open("/proc/self/maps") if "/lib" in line]
libraries = sorted({path for path in maps if "/libllama.so" in path or "/libmtmd.so" in path})
np.savez(out, logits=logits, image=image, libraries=np.array(libraries))
"""


@pytest.fixture(scope="module")
def patched_outputs(patched_runtime, tiny_text_f32_gguf, parity_ids, tiny_mm_text_gguf, tiny_mm_mmproj,
                    tmp_path_factory):
    work = tmp_path_factory.mktemp("patched-parity")
    np.save(work / "ids.npy", parity_ids)
    out = work / "candidate.npz"
    done = subprocess.run([sys.executable, "-c", CANDIDATE, str(tiny_text_f32_gguf), str(work / "ids.npy"),
                           str(tiny_mm_text_gguf(False)), str(tiny_mm_mmproj("f16").path), str(out)],
                          env=runtime_env(patched_runtime), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def test_the_patched_libraries_ran(patched_runtime, patched_outputs):
    libraries = list(patched_outputs["libraries"])
    assert any("libllama" in lib for lib in libraries) and any("libmtmd" in lib for lib in libraries), libraries
    assert all(lib.startswith(str(patched_runtime)) for lib in libraries), libraries


def test_text_parity_meets_the_f32_bounds(patched_outputs, tiny_text_reference_logits):
    stats = parity_stats(tiny_text_reference_logits, patched_outputs["logits"])
    assert stats.n_confident > 300
    assert PARITY_BOUNDS["f32"].violations(stats) == [], stats.to_dict()


def test_image_embeddings_meet_the_stock_bounds(patched_outputs, tiny_mm_checkpoint):
    reference = VisionReference(tiny_mm_checkpoint).image_features(synthetic_image(768))
    stats = embedding_parity(reference, patched_outputs["image"])
    assert stats.n_tokens == 256
    assert stats.min_cosine >= EMBEDDING_MIN_COSINE, stats
    assert stats.max_abs_diff < 0.05 * stats.reference_std, stats
