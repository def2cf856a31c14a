"""Recipes, --tensor-type patterns, WAV files and images: a typed error on damage, never a traceback."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.strategies import damaged
from gemma3n_gguf.core.errors import Gemma3nGGUFError
from gemma3n_gguf.engine.planner import parse_tensor_type_arg
from gemma3n_gguf.quantize.recipes import load_recipe, resolve_options
from gemma3n_gguf.validate.multimodal.media import read_audio, read_image

RECIPE = b'[small]\ndescription = "x"\nscheme = "q4_k_m"\ntensor_type = ["attn_v=q6_k", "ffn_down=q5_k"]\npure = false\n'


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as stream:
        stream.setnchannels(2)
        stream.setsampwidth(2)
        stream.setframerate(16000)
        stream.writeframes(np.arange(64, dtype="<i2").tobytes())
    return buffer.getvalue()


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


WAV, PNG = _wav(), _png()
# RIFF size, fmt chunk size, format, channels, rate, byte rate, block align, bits, data size
WAV_FIELDS = [(4, 4), (16, 4), (20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4)]
PNG_FIELDS = [(16, 4), (20, 4), (24, 1), (25, 1)]  # width, height, bit depth, colour type


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("small")


def _typed_or_nothing(action) -> None:
    try:
        action()
    except Gemma3nGGUFError:
        pass


def test_the_seeds_are_valid(root):
    (root / "r.toml").write_bytes(RECIPE)
    assert load_recipe(root / "r.toml").tensor_type == ("attn_v=q6_k", "ffn_down=q5_k")
    (root / "a.wav").write_bytes(WAV)
    assert read_audio(root / "a.wav").waveform.shape == (32,)
    (root / "i.png").write_bytes(PNG)
    assert read_image(root / "i.png").pixels.shape == (4, 4, 3)


@given(damaged(RECIPE, [(0, 1)], len(RECIPE)))
def test_damaged_recipe_is_a_typed_error(root, content):
    (root / "damaged.toml").write_bytes(content)
    _typed_or_nothing(lambda: resolve_options(load_recipe(root / "damaged.toml")))


@given(st.text(max_size=30))
def test_any_tensor_type_argument_is_parsed_or_refused(argument):
    _typed_or_nothing(lambda: parse_tensor_type_arg(argument))


@given(damaged(WAV, WAV_FIELDS, 44))
def test_damaged_wav_is_a_typed_error(root, content):
    (root / "damaged.wav").write_bytes(content)
    _typed_or_nothing(lambda: read_audio(root / "damaged.wav"))


@given(damaged(PNG, PNG_FIELDS, len(PNG)))
def test_damaged_image_is_a_typed_error(root, content):
    (root / "damaged.png").write_bytes(content)
    _typed_or_nothing(lambda: read_image(root / "damaged.png"))


def test_struct_fields_sit_where_the_tables_say():
    assert struct.unpack_from("<H", WAV, 22)[0] == 2 and struct.unpack_from(">I", PNG, 16)[0] == 4
