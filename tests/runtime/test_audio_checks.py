"""What `validate --audio` / `check --audio` call (checks.audio_parity): the patched runtime when
it is built, the reference path otherwise, each saying which."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gemma3n_gguf.validate.multimodal.audio_runtime import RUNTIME_NOTE
from gemma3n_gguf.validate.multimodal.checks import audio_parity

pytestmark = pytest.mark.slow


def tone(rate: int) -> np.ndarray:
    t = np.arange(int(1.5 * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_audio_parity_runs_in_the_patched_runtime(patched_runtime, tiny_mm_checkpoint, tiny_mm_text_gguf,
                                                  tiny_mm_mmproj):
    result = audio_parity(tiny_mm_mmproj("f16").path, tiny_mm_checkpoint, tone(22050), 22050, tiny_mm_text_gguf(True))
    assert result.note == RUNTIME_NOTE
    assert result.n_tokens == 188
    assert result.embedding_cosine >= 0.999
    assert result.prompt_top1 == 1.0 and result.prompt_kld < 1e-4


_FALLBACK = """
import json, sys, numpy as np
from gemma3n_gguf.validate.multimodal.checks import audio_parity
wave = np.load(sys.argv[4])
r = audio_parity(sys.argv[1], sys.argv[2], wave, 22050, sys.argv[3])
print(json.dumps({"note": r.note, "cosine": r.embedding_cosine, "top1": r.prompt_top1}))
"""


def test_without_the_patched_runtime_it_falls_back_and_says_so(tmp_path, tiny_mm_checkpoint, tiny_mm_text_gguf,
                                                                tiny_mm_mmproj):
    np.save(tmp_path / "tone.npy", tone(22050))
    env = {**os.environ, "GEMMA3N_GGUF_CACHE": str(tmp_path / "empty-cache")}  # a cache with no runtime built
    done = subprocess.run([sys.executable, "-c", _FALLBACK, str(tiny_mm_mmproj("f16").path), str(tiny_mm_checkpoint),
                           str(tiny_mm_text_gguf(True)), str(tmp_path / "tone.npy")],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "reference path, not in llama.cpp" in result["note"]
    assert "python -m gemma3n_gguf.runtime.build" in result["note"]
    assert result["top1"] is None and result["cosine"] >= 0.9999
