"""Damaged GGUF headers: every reader either refuses with a typed error or reads a file ggml would load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.samples import gguf_bytes, ggml_would_load, header_fields, imatrix_gguf_bytes
from fuzz.strategies import damaged
from gemma3n_gguf.core.errors import Gemma3nGGUFError, GGUFFileError
from gemma3n_gguf.core.gguf_read import open_gguf
from gemma3n_gguf.engine.inputs import GGUFInput
from gemma3n_gguf.inspection import summarize
from gemma3n_gguf.quantize.imatrix import normalize, read_imatrix
from gemma3n_gguf.validate.compat import GGUFModelInfo


def _sample(tmp_path_factory, build):
    root = tmp_path_factory.mktemp("gguf")
    data = build(root)
    path = root / "valid.gguf"
    path.write_bytes(data)
    assert ggml_would_load(path)
    return root, data, header_fields(path), open_gguf(path).layout.data_start


@pytest.fixture(scope="module")
def model_sample(tmp_path_factory):
    return _sample(tmp_path_factory, gguf_bytes)


@pytest.fixture(scope="module")
def imatrix_sample(tmp_path_factory):
    return _sample(tmp_path_factory, imatrix_gguf_bytes)


def _typed_or_nothing(action) -> None:
    try:
        action()
    except Gemma3nGGUFError:
        pass


def _requantize_reads(path) -> None:
    source = GGUFInput(path)
    for tensor in source.tensors:
        units, _ = source.units(tensor.name)
        source.values(tensor.name, 0, units)
        source.stored(tensor.name, 0, units)


@given(st.data())
def test_damaged_model_gguf_is_refused_or_loadable(model_sample, data):
    root, valid, fields, header_end = model_sample
    path = root / "damaged.gguf"
    path.write_bytes(data.draw(damaged(valid, fields, header_end)))
    try:
        gguf = open_gguf(path)
    except GGUFFileError:
        return
    assert ggml_would_load(path), "accepted a file ggml's reader refuses"
    _typed_or_nothing(gguf.raw_kv)
    for key in list(gguf.fields):
        _typed_or_nothing(lambda: gguf.value(key))
    _typed_or_nothing(lambda: summarize(path))
    _typed_or_nothing(lambda: _requantize_reads(path))
    _typed_or_nothing(lambda: GGUFModelInfo.read(path))


@given(st.data())
def test_damaged_gguf_imatrix_is_refused_or_loadable(imatrix_sample, data):
    root, valid, fields, header_end = imatrix_sample
    path = root / "damaged.imatrix.gguf"
    path.write_bytes(data.draw(damaged(valid, fields, header_end)))
    try:
        values = normalize(read_imatrix(path))
    except Gemma3nGGUFError:
        return
    assert ggml_would_load(path), "accepted an imatrix ggml's reader refuses"
    assert all(np.isfinite(v).all() for v in values.values())
