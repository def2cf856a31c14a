"""The official vision layout (timm's mobilenetv5_300m_enc, 84 blocks in stages of 3/5/37/39)
with random weights, through the converter and llama.cpp's mtmd. About two minutes on 2 CPUs."""

from __future__ import annotations

import pytest

from gemma3n_gguf.convert import convert
from gemma3n_gguf.convert.projector.convert import convert_mmproj
from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession
from gemma3n_gguf.validate.multimodal.checks import VisionReference, image_embedding_parity

pytestmark = pytest.mark.slow


def test_full_mobilenetv5_300m_layout_matches_transformers(tiny_mm_300m_checkpoint, tmp_path):
    ckpt = tiny_mm_300m_checkpoint
    text = convert(ckpt, tmp_path / "text.gguf", outtype="f16").path
    projector = convert_mmproj(ckpt, tmp_path / "mmproj.gguf", mmproj_type="f16")
    assert projector.plan.blocks_per_stage == [3, 5, 37, 39]
    assert projector.warnings == []
    reference = VisionReference(ckpt)
    with MtmdSession(text, projector.path) as session:
        stats = image_embedding_parity(reference, session)
    assert stats.n_tokens == 256
    assert stats.min_cosine >= 0.9999, stats
    assert stats.max_abs_diff < 0.05 * stats.reference_std, stats
