"""TextConfig parsing and the checks against what llama.cpp hard-codes (no weights needed)."""

from __future__ import annotations

import copy

import pytest

from gemma3n_gguf.model.config import TextConfig, llama_cpp_violations
from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.fixtures.presets import get_preset, text_config


def _hf(preset: str = "tiny-text", **changes) -> dict:
    text = text_config(get_preset(preset)) | {"rope_parameters": {
        "full_attention": {"rope_theta": 1e6, "rope_type": "default"},
        "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"}}}
    text.update(changes)
    return {"model_type": "gemma3n", "text_config": text}


def test_presets_satisfy_llama_cpp():
    for name in ("tiny-text", "tiny-mm", "e2b-shape", "e4b-shape"):
        assert llama_cpp_violations(TextConfig.from_hf(_hf(name))) == [], name


def test_rope_bases_from_both_config_layouts():
    new = TextConfig.from_hf(_hf())
    legacy_text = copy.deepcopy(_hf()["text_config"])
    del legacy_text["rope_parameters"]
    legacy_text |= {"rope_theta": 1e6, "rope_local_base_freq": 1e4}
    legacy = TextConfig.from_hf({"model_type": "gemma3n", "text_config": legacy_text})
    assert (new.rope_theta, new.rope_theta_swa) == (1e6, 1e4)
    assert (legacy.rope_theta, legacy.rope_theta_swa) == (1e6, 1e4)


def test_not_gemma3n_is_refused_with_the_model_type():
    with pytest.raises(ConfigError, match="not a Gemma 3n checkpoint.*'llama'"):
        TextConfig.from_hf({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})


def test_missing_key_is_named():
    cfg = _hf()
    del cfg["text_config"]["laurel_rank"]
    with pytest.raises(ConfigError, match="laurel_rank"):
        TextConfig.from_hf(cfg)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"intermediate_size": [2048] * 4 + [4096] + [2048] * 17}, "FFN widths differ"),
        ({"num_kv_shared_layers": 4}, "KV sharing starts at layer 18"),
        ({"hidden_size_per_layer_input": 128}, "hidden_size_per_layer_input is 128"),
        ({"laurel_rank": 32}, "laurel_rank is 32"),
        ({"altup_num_inputs": 2}, "altup_num_inputs is 2"),
        ({"final_logit_softcapping": 0.0}, "final_logit_softcapping"),
        ({"activation_sparsity_pattern": [0.0] * 22}, "activation_sparsity_pattern differs at layers [0, 1"),
        ({"layer_types": ["sliding_attention"] * 22}, "layer 18 must be sliding and layer 19 full"),
        ({"layer_types": ["sliding_attention"] * 21}, "layer_types has 21 entries"),
    ],
)
def test_each_violation_is_reported(changes, expected):
    found = [str(v) for v in llama_cpp_violations(TextConfig.from_hf(_hf(**changes)))]
    assert any(expected in v for v in found), found


def test_short_model_with_sharing_is_flagged():
    cfg = TextConfig.from_hf(_hf("tiny-mm", num_kv_shared_layers=1))
    assert any("num_kv_shared_layers is 1" in str(v) for v in llama_cpp_violations(cfg))
