"""The type plan against llama.cpp's own selector (llama_quant_compute_types), and user options."""

from __future__ import annotations

import pytest
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.engine.planner import (
    PlanOptions,
    TensorInfo,
    check_imatrix_requirement,
    llama_order_key,
    parse_tensor_type_arg,
    plan_types,
    unmatched_patterns,
)
from gemma3n_gguf.engine.schemes import SCHEMES

from .c_selector import c_compute_types
from .gemma3n_layout import E2B, E4B, TINY, text_tensors

LAYOUTS = {
    "E2B": (E2B, False), "E4B": (E4B, False),
    "tiny": (TINY, False),  # ne0 = 64: exercises tied-embedding Q8_0 and the shape fallbacks
    "tiny-untied": (TINY, True),  # with output.weight: token_embd is no longer "tied"
}
OPTION_SETS = {
    "defaults": {},
    "pure": {"pure": True},
    "token-embedding-type": {"token_embedding_type": T.Q8_0},
    # 32-block types: the overrides below skip the shape fallback, and tiny rows hold 64 values.
    "output-tensor-type": {"output_tensor_type": T.Q5_1},
    "override-blk0-attn_v": {"tensor_type": [(r"blk\.0\.attn_v", T.Q8_0)]},
    "override-ffn_down-then-all": {"tensor_type": [("ffn_down", T.Q5_K), ("blk", T.Q4_K)]},
    "ple-named-beats-token-embedding-type": {"token_embedding_type": T.IQ4_NL,
                                             "tensor_type": [("per_layer_token_embd", T.Q8_0)]},
}


def _sorted_layout(name: str) -> list[TensorInfo]:
    dims, with_output = LAYOUTS[name]
    return sorted(text_tensors(dims, with_output=with_output), key=lambda t: llama_order_key(t.name))


CASES = [(layout, "defaults") for layout in LAYOUTS] + [
    (layout, options) for layout in ("E2B", "tiny-untied") for options in OPTION_SETS if options != "defaults"]


@pytest.mark.parametrize("layout, options", CASES, ids=[f"{a}-{b}" for a, b in CASES])
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_plan_equals_llama_cpp_selector(scheme, layout, options):
    tensors = _sorted_layout(layout)
    kwargs = OPTION_SETS[options]
    expected = c_compute_types(tensors, LAYOUTS[layout][0], SCHEMES[scheme], **kwargs)
    ours = [c.qtype for c in plan_types(tensors, scheme, PlanOptions(**kwargs))]
    mismatches = [(t.name, e.name, o.name) for t, e, o in zip(tensors, expected, ours) if e != o]
    assert not mismatches, mismatches[:5]


def test_override_shifts_the_attn_v_counter():
    # kquants.md §5.3, verified there with C: overriding blk.0.attn_v in Q4_K_M moves the
    # Q6_K attn_v layers from {0,1,2,5,...} to {1,2,3,6,...}.
    choices = plan_types(text_tensors(E2B), "Q4_K_M", PlanOptions(tensor_type=[(r"blk\.0\.attn_v", T.Q8_0)]))
    q6 = sorted(int(c.name.split(".")[1]) for c in choices
                if c.name.endswith("attn_v.weight") and c.qtype is T.Q6_K)
    assert q6[:4] == [1, 2, 3, 6]


def test_tensor_type_naming_ple_beats_token_embedding_type():
    # kquants.md §7: `--tensor-type per_layer_token_embd=q8_0` gives ple Q8_0 while tok stays Q6_K.
    choices = {c.name: c.qtype for c in plan_types(
        text_tensors(E2B), "Q4_K_M", PlanOptions(tensor_type=[("per_layer_token_embd", T.Q8_0)]))}
    assert (choices["per_layer_token_embd.weight"], choices["token_embd.weight"]) == (T.Q8_0, T.Q6_K)


@pytest.mark.parametrize("scheme", ["Q4_K_M", "Q2_K", "IQ4_XS"])
def test_ple_type_equals_a_tensor_type_pattern_naming_ple(scheme):
    tensors = _sorted_layout("E4B")
    expected = c_compute_types(tensors, E4B, SCHEMES[scheme], token_embedding_type=T.Q5_K,
                               tensor_type=[(r"^per_layer_token_embd\.weight$", T.Q8_0)])
    ours = plan_types(tensors, scheme, PlanOptions(ple_type=T.Q8_0, token_embedding_type=T.Q5_K))
    assert [c.qtype for c in ours] == expected


def test_ple_type_applies_in_float_schemes():
    choices = {c.name: c for c in plan_types(text_tensors(E2B), "F16", PlanOptions(ple_type="q8_0"))}
    assert choices["per_layer_token_embd.weight"].qtype is T.Q8_0
    assert choices["token_embd.weight"].qtype is T.F16


def test_shape_fallback_is_reported():
    choices = {c.name: c for c in plan_types(text_tensors(TINY), "Q4_K_M")}
    attn_q = choices["blk.0.attn_q.weight"]  # ne0 = 64: Q4_K's 256-blocks do not fit
    assert attn_q.qtype is T.Q5_0 and "Q5_0" in attn_q.reason


def test_q2_k_s_needs_an_imatrix_except_for_embeddings():
    choices = plan_types(text_tensors(E2B), "Q2_K_S", PlanOptions(has_imatrix=True))
    needing = {c.name for c in choices if c.requires_imatrix}
    assert "token_embd.weight" not in needing and "blk.0.attn_q.weight" in needing
    assert all(c.qtype is T.Q2_K for c in choices if c.requires_imatrix)
    with pytest.raises(QuantizationError, match="importance-matrix"):
        check_imatrix_requirement(choices, None)
    # KV-shared layers have no imatrix entries in llama.cpp: their Q2_K attn_k cannot be made.
    with pytest.raises(QuantizationError, match="blk.20.attn_k.weight"):
        check_imatrix_requirement(choices, needing - {"blk.20.attn_k.weight"})
    check_imatrix_requirement(choices, needing)


def test_tensor_type_argument_parsing():
    assert parse_tensor_type_arg("BLK\\.0\\.ATTN_V=Q8_0") == ("blk\\.0\\.attn_v", T.Q8_0)
    for bad in ("attn_v", "=q8_0", "attn_v=", "attn_v=q9_9"):
        with pytest.raises(QuantizationError):
            parse_tensor_type_arg(bad)


def test_bad_regex_and_unsupported_type_are_errors():
    with pytest.raises(QuantizationError, match="not a valid regex"):
        plan_types(text_tensors(TINY), "Q4_K_M", PlanOptions(tensor_type=[("attn_(v", T.Q8_0)]))
    with pytest.raises(QuantizationError, match="not supported"):
        PlanOptions(token_embedding_type=T.IQ2_XXS)


def test_unmatched_patterns_are_listed():
    options = PlanOptions(tensor_type=[("attn_v", T.Q8_0), ("mlp\\.down", T.Q8_0)])
    assert unmatched_patterns(text_tensors(TINY), options) == ["mlp\\.down"]


def test_override_type_that_does_not_fit_the_rows_is_an_error():
    # --token-embedding-type skips the shape fallback in llama.cpp; we refuse instead of writing garbage.
    with pytest.raises(QuantizationError, match="token_embd"):
        plan_types(text_tensors(TINY), "Q4_K_M", PlanOptions(token_embedding_type=T.Q4_K))
