"""Where llama.cpp's own converter fails, ours works: a transformers-5-saved checkpoint.

llama.cpp's convert_hf_to_gguf.py (from the same llama-cpp-python 0.3.36 sdist whose
runtime we target) writes no K/V for KV-shared layers, and llama.cpp then refuses the file.
The sdist is fetched, pinned and hash-checked, by the install step (`python bench/peers.py`,
run by .ci/run before pytest); a test only reads the unpacked cache and never downloads.
"""

from __future__ import annotations

import subprocess

import pytest

import peers
from peers import PeerMissing, reference_convert_command

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


def test_a_missing_peer_is_an_instruction_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "CACHE", tmp_path / "peers")
    with pytest.raises(PeerMissing, match=r"run `python bench/peers.py` to fetch llama-cpp-python==0\.3\.36"):
        reference_convert_command(tmp_path / "ckpt", tmp_path / "out.gguf", "f32")
    assert not (tmp_path / "peers").exists()
