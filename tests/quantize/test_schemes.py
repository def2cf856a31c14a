"""The scheme table against kquants.md §5.3 (ftype ids, default types, CLI aliases)."""

from __future__ import annotations

import pytest
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.engine.schemes import SCHEMES, get_scheme, parse_tensor_type, scheme_for_ftype

# kquants.md §5.3 "ftype ids" and "The default type per ftype" (plus F32=0, F16=1, BF16=32 of llama.h).
DOC_SCHEMES = {
    "F32": (0, T.F32), "F16": (1, T.F16), "BF16": (32, T.BF16),
    "Q4_0": (2, T.Q4_0), "Q4_1": (3, T.Q4_1), "Q8_0": (7, T.Q8_0), "Q5_0": (8, T.Q5_0), "Q5_1": (9, T.Q5_1),
    "Q2_K": (10, T.Q2_K), "Q3_K_S": (11, T.Q3_K), "Q3_K_M": (12, T.Q3_K), "Q3_K_L": (13, T.Q3_K),
    "Q4_K_S": (14, T.Q4_K), "Q4_K_M": (15, T.Q4_K), "Q5_K_S": (16, T.Q5_K), "Q5_K_M": (17, T.Q5_K),
    "Q6_K": (18, T.Q6_K), "Q2_K_S": (21, T.Q2_K), "IQ4_NL": (25, T.IQ4_NL), "IQ4_XS": (30, T.IQ4_XS),
}


def test_table_matches_llama_quantize():
    assert {name: (int(s.ftype), s.default_type) for name, s in SCHEMES.items()} == DOC_SCHEMES


@pytest.mark.parametrize("alias, name", [("q4_k", "Q4_K_M"), ("Q3_K", "Q3_K_M"), ("q5_K", "Q5_K_M"),
                                         (" q8_0 ", "Q8_0")])
def test_names_are_case_insensitive_with_cli_aliases(alias, name):
    assert get_scheme(alias).name == name


def test_unknown_scheme_lists_the_choices():
    with pytest.raises(QuantizationError, match="Q4_K_M"):
        get_scheme("Q4_K_XL")


def test_ftype_lookup_and_float_schemes():
    assert scheme_for_ftype(15).name == "Q4_K_M"
    assert [s.name for s in SCHEMES.values() if not s.is_quantized] == ["F32", "F16", "BF16"]
    with pytest.raises(QuantizationError):
        scheme_for_ftype(19)  # IQ2_XXS: not offered


def test_tensor_type_names():
    assert parse_tensor_type("q6_k") is T.Q6_K
    with pytest.raises(QuantizationError, match="unknown tensor type"):
        parse_tensor_type("q7_k")
