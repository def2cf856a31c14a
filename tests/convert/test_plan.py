"""The text tensor plan: complete both ways for both saving styles, and llama.cpp's types."""

from __future__ import annotations

import pytest
from gguf import GGMLQuantizationType as Q

from gemma3n_gguf.convert.text import plan_conversion
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.model.names import expected_gguf_names
from gemma3n_gguf.model.text_plan import build_text_plan
from gemma3n_gguf.model.sources import Constant, PadRows, Stack

pytestmark = pytest.mark.slow


def _plan(directory):
    ckpt = Checkpoint(directory)
    return ckpt, build_text_plan(ckpt, TextConfig.from_hf(ckpt.config))


@pytest.mark.parametrize("style", ["transformers5", "google"])
def test_every_required_tensor_planned_once(style, tiny_text_checkpoint, tiny_text_google_checkpoint):
    directory = tiny_text_checkpoint if style == "transformers5" else tiny_text_google_checkpoint
    ckpt, plan = _plan(directory)
    names = [t.name for t in plan.tensors]
    assert len(names) == len(set(names))
    assert set(names) == expected_gguf_names(22)
    used = {n for t in plan.tensors for n in t.source.inputs}
    assert used | set(plan.dropped) == set(ckpt.tensors)  # nothing read twice or ignored silently
    assert all(n.startswith(("model.vision_tower", "model.audio_tower", "model.embed_")) for n in plan.dropped)
    expected_synth = 6 if style == "transformers5" else 0
    assert len(plan.synthesised) == expected_synth


def test_sources_and_shapes(tiny_text_checkpoint):
    _, plan = _plan(tiny_text_checkpoint)
    by_name = {t.name: t for t in plan.tensors}
    assert isinstance(by_name["token_embd.weight"].source, PadRows)
    assert by_name["token_embd.weight"].shape == (1280, 64)
    assert by_name["per_layer_token_embd.weight"].shape == (1280, 22 * 256)  # padded from 1024 rows
    assert isinstance(by_name["altup_proj.weight"].source, Stack)
    assert by_name["altup_proj.weight"].shape == (3, 64, 64)
    k_norm = by_name["blk.21.attn_k_norm.weight"]
    assert isinstance(k_norm.source, Constant) and k_norm.source.value == 1.0


def test_types_follow_llama_cpp(tiny_text_checkpoint):
    _, plan = plan_conversion(tiny_text_checkpoint, outtype="q8_0")
    types = {t.name: t.qtype for t in plan.tensors}
    assert types["blk.0.attn_norm.weight"] == Q.F32
    assert types["blk.0.altup_correct_coef.weight"] == Q.F32
    assert types["blk.0.altup_predict_coef.weight"] == Q.F32
    assert types["blk.0.altup_correct_scale.weight"] == Q.F32  # 1-D
    assert types["blk.0.ffn_up.weight"] == Q.Q8_0
    assert types["per_layer_token_embd.weight"] == Q.Q8_0
