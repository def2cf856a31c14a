"""Every file the toolkit writes stays byte for byte what it was before the layered move.

The SHA-256 of each output was recorded with the code as it stood before the architecture
change (``tests/golden/outputs.py --record``); any change to a written byte fails here.
Re-recorded once on purpose since: the five projector files, when their ``general.description``
stopped saying llama.cpp cannot run Gemma 3n audio (the patched runtime can); the other 26
hashes were equal in that re-recording.
"""

from __future__ import annotations

import json

import pytest

from golden.outputs import HASHES, build_outputs

pytestmark = pytest.mark.slow


def test_every_output_is_byte_identical_to_the_recorded_one(tmp_path, tiny_mm_300m_checkpoint):
    expected = json.loads(HASHES.read_text())
    actual = build_outputs(tmp_path, prebuilt={"tiny-mm-300m": tiny_mm_300m_checkpoint})
    assert sorted(actual) == sorted(expected)
    changed = sorted(name for name in expected if actual[name] != expected[name])
    assert changed == []
