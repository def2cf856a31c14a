"""The type plan for real E2B/E4B shapes against kquants.md §7 ("Result of the C selector").

Every expectation below is transcribed from the doc's table, not produced by the code
under test. Tensors are built from shapes only (gemma3n_layout.py).
"""

from __future__ import annotations

import random

import pytest
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.engine.planner import PlanOptions, TensorChoice, plan_types
from gemma3n_gguf.engine.schemes import SCHEMES

from .gemma3n_layout import E2B, E4B, TextDims, text_tensors

LAYER_KINDS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "inp_gate", "proj")
NEVER = ("per_layer_model_proj", "altup", "laurel", "_norm")

# kquants.md §7, per layer count: "layers 0–2 [0–3]", the use_more_bits lists, "layer 0 [0–1]".
FIRST_EIGHTH = {30: set(range(3)), 35: set(range(4))}
MORE_BITS = {30: {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29},
             35: {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34}}
FIRST_SIXTEENTH = {30: {0}, 35: {0, 1}}


def _by_layer(layers: set[int], inside: T, outside: T):
    return lambda il: inside if il in layers else outside


def doc_table(scheme: str, n: int, imatrix: bool = False) -> tuple[T, dict]:
    """(tok/ple type, {kind: type or layer -> type}) for kinds that differ from the default."""
    first, more = FIRST_EIGHTH[n], MORE_BITS[n]
    tables = {
        "Q4_0": (T.Q6_K, {"ffn_down": _by_layer(first, T.Q4_1, T.Q4_0)} if imatrix else {}),
        "Q4_1": (T.Q6_K, {}),
        "Q5_0": (T.Q6_K, {"ffn_down": _by_layer(first, T.Q5_1, T.Q5_0)} if imatrix else {}),
        "Q5_1": (T.Q6_K, {}),
        "Q8_0": (T.Q8_0, {}),
        "Q2_K": (T.Q6_K, {"attn_v": T.Q4_K, "attn_output": T.Q3_K, "ffn_down": T.Q3_K}),
        "Q2_K_S": (T.Q6_K, {"attn_v": T.Q4_K, "ffn_down": _by_layer(first, T.Q4_K, T.Q2_K)}),
        "Q3_K_S": (T.Q6_K, {}),
        "Q3_K_M": (T.Q6_K, {"attn_v": _by_layer({0, 1}, T.Q5_K, T.Q4_K), "attn_output": T.Q4_K,
                            "ffn_down": _by_layer(FIRST_SIXTEENTH[n], T.Q5_K, T.Q4_K)}),
        "Q3_K_L": (T.Q6_K, {"attn_v": T.Q5_K, "attn_output": T.Q5_K, "ffn_down": T.Q5_K}),
        "Q4_K_S": (T.Q6_K, {"attn_v": _by_layer({0, 1, 2, 3}, T.Q5_K, T.Q4_K),
                            "ffn_down": _by_layer(first, T.Q5_K, T.Q4_K)}),
        "Q4_K_M": (T.Q6_K, {"attn_v": _by_layer(more, T.Q6_K, T.Q4_K),
                            "ffn_down": _by_layer(more, T.Q6_K, T.Q4_K)}),
        "Q5_K_M": (T.Q6_K, {"attn_v": _by_layer(more, T.Q6_K, T.Q5_K),
                            "ffn_down": _by_layer(more, T.Q6_K, T.Q5_K)}),
        "Q5_K_S": (T.Q6_K, {}),
        "Q6_K": (T.Q6_K, {}),
        # IQ4_NL/IQ4_XS: the ffn_down bump happens "only without an imatrix"
        "IQ4_NL": (T.Q6_K, {"attn_v": T.Q5_K, "ffn_down": _by_layer(set() if imatrix else first, T.Q5_K, T.IQ4_NL)}),
        "IQ4_XS": (T.Q6_K, {"attn_v": T.Q5_K, "ffn_down": _by_layer(set() if imatrix else first, T.Q5_K, T.IQ4_XS)}),
    }
    return tables[scheme]


def _expected(scheme: str, dims: TextDims, imatrix: bool) -> dict[str, T]:
    embd_type, special = doc_table(scheme, dims.n_layer, imatrix)
    default = SCHEMES[scheme].default_type
    expected = {"token_embd.weight": embd_type, "per_layer_token_embd.weight": embd_type}
    for il in range(dims.n_layer):
        for kind in LAYER_KINDS:
            rule = special.get(kind, default)
            expected[f"blk.{il}.{kind}.weight"] = rule(il) if callable(rule) else rule
    return expected


def _quantized(tensors, choices: list[TensorChoice]) -> dict[str, T]:
    return {c.name: c.qtype for t, c in zip(tensors, choices) if c.qtype != t.source_type}


QUANTIZED_SCHEMES = [name for name, s in SCHEMES.items() if s.is_quantized]


@pytest.mark.parametrize("dims", [E2B, E4B], ids=["E2B", "E4B"])
@pytest.mark.parametrize("scheme", QUANTIZED_SCHEMES)
def test_doc_table_without_imatrix(scheme, dims):
    tensors = text_tensors(dims)
    assert _quantized(tensors, plan_types(tensors, scheme)) == _expected(scheme, dims, imatrix=False)


@pytest.mark.parametrize("dims", [E2B, E4B], ids=["E2B", "E4B"])
@pytest.mark.parametrize("scheme", ["Q4_0", "Q5_0", "IQ4_NL", "IQ4_XS", "Q2_K_S", "Q4_K_M"])
def test_doc_table_with_imatrix(scheme, dims):
    tensors = text_tensors(dims)
    choices = plan_types(tensors, scheme, PlanOptions(has_imatrix=True))
    assert _quantized(tensors, choices) == _expected(scheme, dims, imatrix=True)


@pytest.mark.parametrize("dims, count", [(E2B, 272), (E4B, 317)], ids=["E2B", "E4B"])
def test_quantized_tensor_set_size(dims, count):
    tensors = text_tensors(dims)
    assert len(tensors) == 24 * dims.n_layer + 7  # gemma3n-gguf-format.md §2.3: 727 for E2B
    assert len(_quantized(tensors, plan_types(tensors, "Q4_K_M"))) == count


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_altup_laurel_proj_and_norms_keep_their_type(scheme):
    tensors = text_tensors(E2B)
    for tensor, choice in zip(tensors, plan_types(tensors, scheme)):
        if any(part in tensor.name for part in NEVER) or len(tensor.shape) == 1:
            assert choice.qtype == tensor.source_type, tensor.name


@pytest.mark.parametrize("scheme", ["F16", "BF16", "F32"])
def test_float_schemes_convert_every_quantizable_tensor(scheme):
    tensors = text_tensors(E2B, matrix_type=T.F32 if scheme != "F32" else T.F16)
    quantized = _quantized(tensors, plan_types(tensors, scheme))
    assert set(quantized.values()) == {SCHEMES[scheme].default_type}
    assert len(quantized) == 272


def test_input_order_does_not_matter():
    tensors = text_tensors(E2B)
    shuffled = tensors[:]
    random.Random(0).shuffle(shuffled)
    by_name = {c.name: c.qtype for c in plan_types(shuffled, "Q4_K_M")}
    assert by_name == {c.name: c.qtype for c in plan_types(tensors, "Q4_K_M")}
    assert [c.name for c in plan_types(shuffled, "Q4_K_M")] == [t.name for t in shuffled]


def test_kv_shared_layers_are_counted_like_any_layer():
    # llama.cpp counts every attn_v in the file, KV-shared layers (20+) included: n_attention_wv = 30.
    # Dropping those tensors would change the count and so the use_more_bits layers.
    choices = {c.name: c for c in plan_types(text_tensors(E2B), "Q4_K_M")}
    assert "(i=26, n=30)" in choices["blk.26.attn_v.weight"].reason
    assert choices["blk.26.attn_v.weight"].qtype is T.Q6_K
