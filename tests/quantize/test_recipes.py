"""Recipes: the documented example parses, options merge as documented, bad files are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.quantize.recipes import load_recipe, resolve_options

DOC = Path(__file__).parents[2] / "docs" / "recipes.md"


@pytest.fixture
def example(tmp_path) -> Path:
    """The TOML example of docs/recipes.md, as a file."""
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, "docs/recipes.md lost its TOML example"
    path = tmp_path / "recipes.toml"
    path.write_text(block.group(1), encoding="utf-8")
    return path


def test_documented_example_resolves(example):
    scheme, options = resolve_options(load_recipe(example, "small-ple"))
    assert scheme.name == "Q4_K_M"
    assert options.ple_type == T.Q4_K
    assert options.tensor_type == (("attn_v", T.Q6_K),)
    scheme, options = resolve_options(load_recipe(example, "kv-shared-safe-q2"))
    assert scheme.name == "Q2_K_S"
    assert options.tensor_type == ((r"blk\.([2-9]\d|\d{3,})\.attn_(k|v)", T.Q4_K),)


def test_command_line_wins_over_the_recipe(example):
    recipe = load_recipe(example, "small-ple")
    scheme, options = resolve_options(recipe, scheme="q5_k_m", tensor_type=["ATTN_V=q8_0"], ple_type="q8_0",
                                      pure=True)
    assert scheme.name == "Q5_K_M"
    assert options.ple_type == T.Q8_0
    assert options.tensor_type == (("attn_v", T.Q8_0), ("attn_v", T.Q6_K))  # command line first
    assert options.pure


def test_no_recipe_means_q4_k_m_defaults():
    scheme, options = resolve_options()
    assert scheme.name == "Q4_K_M"
    assert (options.tensor_type, options.ple_type, options.pure) == ((), None, False)


def test_a_single_recipe_needs_no_name(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[only]\nscheme = "Q6_K"\n', encoding="utf-8")
    assert load_recipe(path).scheme == "Q6_K"


@pytest.mark.parametrize(("text", "name", "message"), [
    ('[a]\nscheme = "Q6_K"\n[b]\nscheme = "Q8_0"\n', None, "several recipes (a, b)"),
    ('[a]\nscheme = "Q6_K"\n', "b", "no recipe 'b'"),
    ('[a]\nschem = "Q6_K"\n', "a", "unknown key(s) schem"),
    ('[a]\ntensor_type = [1]\n', "a", "list of \"REGEX=TYPE\" strings"),
    ('[a]\npure = "yes"\n', "a", "pure must be true or false"),
    ('scheme = "Q6_K"\n', None, "holds no recipe"),
    ('[a\n', None, "not valid TOML"),
])
def test_bad_recipe_files(tmp_path, text, name, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QuantizationError, match=re.escape(message)):
        load_recipe(path, name)


def test_bad_values_surface_when_resolved(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[r]\nscheme = "Q9_K"\n', encoding="utf-8")
    with pytest.raises(QuantizationError, match="unknown scheme 'Q9_K'"):
        resolve_options(load_recipe(path))
    path.write_text('[r]\ntensor_type = ["attn_v"]\n', encoding="utf-8")
    with pytest.raises(QuantizationError, match="REGEX=TYPE"):
        resolve_options(load_recipe(path))
