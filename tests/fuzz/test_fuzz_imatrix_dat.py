"""Damaged legacy .dat imatrices: QuantizationError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given

from fuzz.samples import imatrix_dat_bytes
from fuzz.strategies import damaged
from gemma3n_gguf.core.errors import Gemma3nGGUFError
from gemma3n_gguf.quantize.imatrix import normalize, read_imatrix

VALID = imatrix_dat_bytes()
NAME_LEN = 19
# n_entries, name length, ncall, nval, chunk count, dataset-name length
FIELDS = [(0, 4), (4, 4), (8 + NAME_LEN, 4), (12 + NAME_LEN, 4), (32 + NAME_LEN, 4), (36 + NAME_LEN, 4)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("dat")


def test_the_seed_is_valid(root):
    (root / "valid.dat").write_bytes(VALID)
    assert read_imatrix(root / "valid.dat").datasets == ["wiki"]


@given(damaged(VALID, FIELDS, len(VALID)))
def test_damaged_dat_is_a_typed_error(root, content):
    path = root / "damaged.dat"
    path.write_bytes(content)
    try:
        normalize(read_imatrix(path))
    except Gemma3nGGUFError:
        pass
