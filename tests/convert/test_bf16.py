"""The converter's bfloat16 helpers, checked on every one of the 65,536 words."""

from __future__ import annotations

import math
import struct

import numpy as np

from gemma3n_gguf.core.checkpoint import bf16_to_f32 as widen_bf16
from gemma3n_gguf.core.encode import bf16_words_finite as bf16_finite

ALL_WORDS = np.arange(1 << 16, dtype=np.uint16)


def test_widen_bf16_is_exact_for_every_word():
    expected = np.array([w << 16 for w in range(1 << 16)], dtype=np.uint32)
    assert np.array_equal(widen_bf16(ALL_WORDS).view(np.uint32), expected)


def test_bf16_finite_flags_exactly_nan_and_inf():
    finite = [math.isfinite(struct.unpack("<f", struct.pack("<I", w << 16))[0]) for w in range(1 << 16)]
    assert [bf16_finite(np.array([0x3F80, w, 0], dtype=np.uint16)) for w in range(1 << 16)] == finite
    assert bf16_finite(np.empty(0, dtype=np.uint16))
