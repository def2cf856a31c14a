"""Damaged safetensors shards, indexes and configs: a typed error, or exactly what the library reads."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open

from fuzz.samples import safetensors_bytes
from fuzz.strategies import JSON, damaged
from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import CheckpointError, ConfigError
from gemma3n_gguf.core.safetensors import read_shard_header
from gemma3n_gguf.fixtures.presets import get_preset, text_config
from gemma3n_gguf.model.config import TextConfig

VALID = safetensors_bytes()
HEADER_END = 8 + struct.unpack("<Q", VALID[:8])[0]
HEADER = json.loads(VALID[8:HEADER_END])
TENSOR_KEYS = ("dtype", "shape", "data_offsets")


@st.composite
def edited_header(draw) -> bytes:
    """The header with one tensor's key replaced, removed or added, re-serialized over the same data."""
    header = json.loads(json.dumps(HEADER))
    name = draw(st.sampled_from(sorted(header)))
    key = draw(st.sampled_from(TENSOR_KEYS + ("extra",)))
    if draw(st.booleans()) and key in header[name]:
        del header[name][key]
    elif name == "__metadata__" or draw(st.booleans()):
        header[name] = draw(JSON) if draw(st.booleans()) else {key: draw(JSON)}
    else:
        header[name][key] = draw(JSON | st.lists(st.integers(-2, 40), max_size=3))
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + VALID[HEADER_END:]


def _library_view(path) -> dict:
    with safe_open(str(path), "numpy") as f:
        return {name: f.get_slice(name).get_shape() for name in f.keys()}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("shards")


@given(st.one_of(damaged(VALID, [(0, 8)], HEADER_END), edited_header()))
def test_damaged_shard_is_refused_or_read_as_the_library_reads_it(root, content):
    path = root / "damaged.safetensors"
    path.write_bytes(content)
    try:
        header = read_shard_header(path)
    except CheckpointError:
        return
    assert {t.name: list(t.shape) for t in header.tensors} == _library_view(path)


@given(st.one_of(JSON, st.dictionaries(st.text(max_size=4), JSON | st.sampled_from(
    ["model.safetensors", "../model.safetensors", "/tmp/x", "", "sub/../model.safetensors"]), max_size=3)))
def test_damaged_index_is_a_checkpoint_error(root, weight_map):
    ckpt = root / "ckpt"
    ckpt.mkdir(exist_ok=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(VALID)
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    try:
        Checkpoint(ckpt)
    except CheckpointError:
        pass


CONFIG = {**text_config(get_preset("tiny-text")), "rope_theta": 1e6}


@given(st.sampled_from(sorted(CONFIG)), JSON, st.booleans())
def test_damaged_config_is_a_config_error(key, value, remove):
    config = dict(CONFIG)
    if remove:
        del config[key]
    else:
        config[key] = value
    try:
        TextConfig.from_hf(config)
    except ConfigError:
        pass


def test_the_seed_config_is_valid():
    assert TextConfig.from_hf(CONFIG).num_layers == CONFIG["num_hidden_layers"]
