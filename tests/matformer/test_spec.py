"""The official table, width specs and slicing rules: pure, no weights."""

from __future__ import annotations

import pytest

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.slice.configs import OFFICIAL_CONFIGS, official_config
from gemma3n_gguf.slice.rules import SliceRequest, kv_source_layers, resolve, sliced_text_config
from gemma3n_gguf.slice.spec import compact_widths, parse_layer_list, parse_width_spec, slice_request

# Three rows of Google's table (google/gemma3n-slicing-configs), verbatim in their CSV form.
_W = "2_048 * {}"
E269_ROW = ('Config for E2.69B (layer-level),35,2.69,57.70%,"[' + ", ".join(
    _W.format(8 if i in (4, 9, 14, 19, 20, 21, 22, 23, 24) else 4) for i in range(35)) + ']",')
E2B_ROW = ('Config for official E2B Model,30,1.91,50.90%,"[' + ", ".join([_W.format(4)] * 30)
           + ']","[20, 21, 22, 23, 24]"')


def e4b_config(width: int = 16384) -> TextConfig:
    types = ["full_attention" if i % 5 == 4 else "sliding_attention" for i in range(35)]
    return TextConfig(num_layers=35, hidden_size=2048, intermediate_sizes=(width,) * 35, num_heads=8,
                      num_kv_heads=2, head_dim=256, vocab_size=262400, vocab_size_per_layer_input=262144,
                      ple_dim=256, laurel_rank=64, altup_num_inputs=4, altup_active_idx=0, num_kv_shared_layers=15,
                      sliding_window=512, layer_types=tuple(types),
                      activation_sparsity=(0.95,) * 10 + (0.0,) * 25, rope_theta=1e6, rope_theta_swa=1e4,
                      rms_norm_eps=1e-6, final_logit_softcapping=30.0, context_length=32768)


def test_google_csv_rows_give_the_table():
    spec = parse_width_spec(E269_ROW)
    assert spec.widths == official_config("e2.69b-layer").widths(16384) and spec.skipped == ()
    assert spec.name == "e2.69b-layer"
    spec = parse_width_spec(E2B_ROW)
    assert spec.widths == (8192,) * 30 and spec.skipped == (20, 21, 22, 23, 24) and spec.name == "e2b"


def test_the_table_has_16_configurations_with_google_names():
    assert len(OFFICIAL_CONFIGS) == 16 and len({c.slug for c in OFFICIAL_CONFIGS}) == 16
    assert official_config("Config for E3.79B (block-level)").effective_params_b == 3.74
    assert [c.num_layers for c in OFFICIAL_CONFIGS].count(30) == 2


@pytest.mark.parametrize("text, widths", [
    ("8192*20,16384*15", (8192,) * 20 + (16384,) * 15),
    ("256,512,256", (256, 512, 256)),
    ("[2_048 * 4, 2_048 * 8]", (8192, 16384)),
])
def test_width_forms(text, widths):
    assert parse_width_spec(text).widths == widths


def test_compact_form_reads_back():
    widths = official_config("e3.18b-layer").widths(16384)
    assert parse_width_spec(compact_widths(widths)).widths == widths


def test_layer_lists():
    assert parse_layer_list("20-24") == parse_layer_list("[20, 21, 22, 23, 24]") == (20, 21, 22, 23, 24)
    assert parse_layer_list("") == ()


def test_official_names_apply_by_ratio():
    request = slice_request(e4b_config(512), config="e2.54b-layer")
    assert request.widths == (256,) * 4 + (512,) + (256,) * 15 + (512,) * 5 + (256,) * 10


def test_kv_sources_are_layers_18_and_19_on_e4b():
    assert kv_source_layers(e4b_config()) == (18, 19)


def test_e2b_slice_config():
    cfg = e4b_config()
    s = resolve(SliceRequest((8192,) * 30, (20, 21, 22, 23, 24)), cfg)
    text = sliced_text_config({"num_hidden_layers": 35}, cfg, s)
    assert text["num_hidden_layers"] == 30 and text["num_kv_shared_layers"] == 10
    assert text["layer_types"][18:20] == ["sliding_attention", "full_attention"] and len(text["layer_types"]) == 30
    assert text["activation_sparsity_pattern"] == [0.95] * 10 + [0.0] * 20


def test_skipping_an_early_layer_keeps_each_layers_own_sparsity():
    cfg = e4b_config()
    s = resolve(SliceRequest((8192,) * 34, (3,)), cfg)
    text = sliced_text_config({}, cfg, s)
    assert text["activation_sparsity_pattern"] == [0.95] * 9 + [0.0] * 25
    assert text["num_kv_shared_layers"] == 15  # the boundary moves to 19: a verdict, not a refusal


@pytest.mark.parametrize("request_, fragment", [
    (SliceRequest((8192,) * 34), "34 FFN widths given for 35 kept layers"),
    (SliceRequest((8192,) * 34 + (32768,)), "exceeds the checkpoint's 16384"),
    (SliceRequest((8192,) * 34 + (-1,)), "is not positive"),
    (SliceRequest((8192,) * 33, (18, 25)), "cannot skip layer(s) [18]"),
    (SliceRequest((8192,) * 34, (35,)), "the checkpoint has layers 0-34"),
])
def test_impossible_slices_name_the_rule(request_, fragment):
    with pytest.raises(ConfigError, match=None) as raised:
        resolve(request_, e4b_config())
    assert fragment in str(raised.value)


def test_official_names_need_35_layers():
    with pytest.raises(ConfigError, match="35-layer"):
        slice_request(TextConfig(**{**e4b_config().__dict__, "num_layers": 30}), config="e2b")
