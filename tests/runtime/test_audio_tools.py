"""The patched runtime's own tools take a WAV file: ``llama-mtmd-cli --audio`` and
``llama-server``'s OpenAI-style ``input_audio``, on tiny-mm (f16 text model and projector).

The model's weights are random, so what it answers means nothing; what is checked is that the
tools accept the clip and put it in the prompt as transformers does: 188 soft tokens
(``audio_soft_tokens_per_image``) between ``<start_of_audio>`` and ``<end_of_audio>``.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from gemma3n_gguf.core.checkpoint import Checkpoint

pytestmark = pytest.mark.slow

AUDIO_MARKERS = 2  # <start_of_audio> and <end_of_audio>, which mtmd adds around the clip
QUESTION = "What do you hear?"


def write_tone(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    samples = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * rate)) / rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def model_files(tiny_mm_checkpoint, tiny_mm_mmproj, tmp_path_factory):
    from gemma3n_gguf.convert import convert

    out = tmp_path_factory.mktemp("audio-tools")
    text = convert(tiny_mm_checkpoint, out / "tiny-mm-f16.gguf", outtype="f16").path
    return text, tiny_mm_mmproj("f16").path, write_tone(out / "tone.wav")


def soft_tokens_per_clip(checkpoint: Path) -> int:
    return int(Checkpoint(checkpoint).config["audio_soft_tokens_per_image"])


def test_mtmd_cli_answers_about_a_wav_file(patched_runtime, model_files):
    text, projector, wav = model_files
    done = subprocess.run([str(patched_runtime / "bin" / "llama-mtmd-cli"), "-m", str(text), "--mmproj", str(projector),
                           "--audio", str(wav), "-p", QUESTION, "-n", "4", "--temp", "0"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "audio input is in experimental stage" in done.stderr  # mtmd's audio path, not a skipped tower
    assert "mtmd batch encoding done" in done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chat(port: int, content: list[dict]) -> dict:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 4, "temperature": 0}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def wait_until_healthy(server: subprocess.Popen, port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "llama-server exited while loading"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"llama-server did not become healthy in {timeout_s:.0f} s")


def test_server_puts_the_clip_in_the_prompt_as_transformers_does(patched_runtime, model_files, tiny_mm_checkpoint,
                                                                  tmp_path):
    text, projector, wav = model_files
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([str(patched_runtime / "bin" / "llama-server"), "-m", str(text), "--mmproj",
                               str(projector), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
    try:
        wait_until_healthy(server, port)
        clip = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav.read_bytes()).decode(),
                                                        "format": "wav"}}
        question = {"type": "text", "text": QUESTION}
        with_audio = chat(port, [clip, question])
        without = chat(port, [question])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    added = with_audio["usage"]["prompt_tokens"] - without["usage"]["prompt_tokens"]
    assert added == soft_tokens_per_clip(tiny_mm_checkpoint) + AUDIO_MARKERS
    assert with_audio["choices"][0]["finish_reason"] in ("length", "stop")
