"""The projector's table of timm's block-string notation decodes every string as timm does."""

from __future__ import annotations

import inspect
import re

import pytest
import timm.models._efficientnet_builder as timm_builder
import timm.models.mobilenetv5 as timm_mobilenetv5
from timm.layers import get_act_layer

from gemma3n_gguf.convert.projector.block_strings import decode_stages
from gemma3n_gguf.convert.projector.config import block_args
from gemma3n_gguf.fixtures.presets import TINY_VISION_ARCH

# Every block string of timm's own MobileNet-V5 definitions (base and 300m encoder).
TIMM_BLOCK_STRINGS = sorted(set(re.findall(r"['\"]((?:er|uir|mqa)_[a-z0-9_.]+)['\"]",
                                           inspect.getsource(timm_mobilenetv5))))
# Notation timm accepts but the MobileNet-V5 definitions do not use.
OTHER_NOTATION = ["uir_r2_a3_k5_p3_s2_e4_c32_se0.25", "er_r1_k3_s1_e4_c16_noskip_nre",
                  "mqa_r1_k3_h4_v2_s1_d16_c64_skip_nhs", "uir_r1_a0_k0_s1_e2_c8_nsw", "er_r3_k3_s2_e6_c24_nmi"]


def timm_decoded(stages: list[list[str]], ours: list[list[dict]]) -> list[list[dict]]:
    """timm's decoding, restricted to the fields ours gives, activations by name."""
    theirs = timm_builder.decode_arch_def([list(stage) for stage in stages])
    assert [len(s) for s in theirs] == [len(s) for s in ours]
    return [[{field: block[field] for field in mine} for block, mine in zip(stage, our_stage)]
            for stage, our_stage in zip(theirs, ours)]


def with_timm_activations(stages: list[list[dict]]) -> list[list[dict]]:
    return [[block | {"act_layer": get_act_layer(block["act_layer"]) if block["act_layer"] else None}
             for block in stage] for stage in stages]


def test_timm_definitions_are_found():
    assert len(TIMM_BLOCK_STRINGS) >= 10
    assert {s.split("_")[0] for s in TIMM_BLOCK_STRINGS} == {"er", "uir", "mqa"}


@pytest.mark.parametrize("text", TIMM_BLOCK_STRINGS + OTHER_NOTATION)
def test_each_block_string_decodes_as_timm_does(text):
    ours = decode_stages([[text]])
    assert with_timm_activations(ours) == timm_decoded([[text]], ours)


def test_the_tiny_preset_layout_decodes_as_timm_does():
    ours = decode_stages([list(stage) for stage in TINY_VISION_ARCH])
    assert [len(stage) for stage in ours] == [1, 1, 3, 3]
    assert ours == timm_decoded(TINY_VISION_ARCH, ours)


def test_string_block_args_reach_the_llama_cpp_checks():
    decoded = block_args({"block_args": [["uir_r2_a3_k5_s2_e4_c32_noskip"], ["mqa_r1_k3_h2_v4_s1_d8_c32"]]})
    assert [len(stage) for stage in decoded] == [2, 1]
    assert decoded[0][0]["noskip"] is True and decoded[0][1]["stride"] == 2
    assert decoded[1][0]["kv_stride"] == 4
