"""Where llama.cpp's own converter fails, ours works: a transformers-5-saved checkpoint.

llama.cpp's convert_hf_to_gguf.py (from the same llama-cpp-python 0.3.36 sdist whose
runtime we target) writes no K/V for KV-shared layers, and llama.cpp then refuses the file.
"""

from __future__ import annotations

import subprocess

import pytest

from peers import reference_convert_command

pytestmark = pytest.mark.slow


def _loads(path) -> bool:
    import llama_cpp

    try:
        llama_cpp.Llama(str(path), n_ctx=64, verbose=False).close()
        return True
    except ValueError:
        return False


def test_reference_converter_output_does_not_load_ours_does(tiny_text_checkpoint, tiny_text_f32_gguf, tmp_path):
    reference = tmp_path / "reference.gguf"
    subprocess.run(reference_convert_command(tiny_text_checkpoint, reference, "f32"), check=True,
                   capture_output=True)
    assert reference.is_file()
    assert not _loads(reference)
    assert _loads(tiny_text_f32_gguf)
