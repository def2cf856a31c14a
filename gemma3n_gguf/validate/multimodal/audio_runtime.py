"""Gemma 3n audio in the patched llama.cpp runtime against transformers.

transformers feeds the text model a fixed number of audio soft tokens per clip
(``audio_soft_tokens_per_image``: 188, the tokens of 30 s): the audio tower's tokens, then the
embedding of the audio vocabulary's last id. The patched runtime (``0002-gemma3n-audio.patch``)
does the same, so embeddings and the logits after an audio prompt compare one to one:

- :class:`AudioReference`: the checkpoint in transformers (float32, eager, CPU), never whole:
  the rows its text model receives at the audio positions (the audio tower and ``embed_audio``
  alone), and the logits of a token sequence holding a clip (the layer-streamed text model);
- :func:`run_in_runtime`: mtmd's mel features, audio embeddings and prompt logits, computed in
  a fresh process that loads the patched libraries (:func:`gemma3n_gguf.runtime.build.runtime_env`);
- :func:`audio_runtime_parity`: both, compared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import RuntimeUnavailableError, ValidationError
from gemma3n_gguf.validate.metrics.embedding import embedding_parity
from gemma3n_gguf.validate.metrics.parity import ParityStats, parity_stats
from gemma3n_gguf.validate.multimodal.mtmd import IMAGE_POSITION

if TYPE_CHECKING:  # the streamed reference imports torch: only when a reference is built
    from gemma3n_gguf.reference.streamed import AudioSoftTokens

RUNTIME_NOTE = "audio run by the patched llama.cpp runtime (mtmd, gemma3na) and compared with transformers"
AUDIO_PROMPT = "Transcribe this clip: <__media__> What is said, and by whom?"


@dataclass(frozen=True)
class RuntimeAudio:
    """What mtmd made of one waveform."""

    features: NDArray[np.float32]  # (frames, mel bins), the encoder's input
    embeddings: NDArray[np.float32] | None  # (tokens, n_embd) fed to the text model
    tokens: NDArray[np.int64] | None = None  # the prompt; IMAGE_POSITION at the audio rows
    text_positions: NDArray[np.int64] | None = None
    logits: NDArray[np.float32] | None = None  # at text_positions


_PACKAGE_ROOT = Path(__file__).resolve().parents[3]  # the child imports this package, installed or not
_CHILD = """
import sys, numpy as np
from gemma3n_gguf.validate.multimodal.audio_runtime import _child_main
_child_main(*sys.argv[1:])
"""


def run_in_runtime(lib_dir: str | os.PathLike[str], text_gguf: str | os.PathLike[str],
                   mmproj_gguf: str | os.PathLike[str], waveforms: list[NDArray[np.floating]], *,
                   embeddings: bool = True, prompt: str | None = None, timeout: float = 1800) -> list[RuntimeAudio]:
    """mtmd's view of every waveform, from the libraries of ``lib_dir`` loaded in a fresh
    process; the prompt (one ``<__media__>`` marker) is evaluated with the first waveform."""
    from gemma3n_gguf.runtime.build import runtime_env

    with tempfile.TemporaryDirectory(prefix="gemma3n-audio-") as scratch:
        inputs, outputs = Path(scratch) / "in.npz", Path(scratch) / "out.npz"
        np.savez(inputs, *[np.asarray(w, np.float32) for w in waveforms])
        command = [sys.executable, "-c", _CHILD, str(text_gguf), str(mmproj_gguf), str(inputs), str(outputs),
                   "1" if embeddings else "0", prompt or ""]
        env = runtime_env(Path(lib_dir))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeUnavailableError(f"the patched runtime failed on the audio ({last})")
        with np.load(outputs) as data:
            return [_unpack(data, i) for i in range(len(waveforms))]


def _unpack(data: Any, index: int) -> RuntimeAudio:
    get = lambda key: data[f"{key}{index}"] if f"{key}{index}" in data else None  # noqa: E731
    return RuntimeAudio(get("features"), get("embeddings"), get("tokens"), get("text_positions"), get("logits"))


def _child_main(text_gguf: str, mmproj_gguf: str, inputs: str, outputs: str, embeddings: str, prompt: str) -> None:
    from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession

    out: dict[str, NDArray] = {}
    with np.load(inputs) as data, MtmdSession(text_gguf, mmproj_gguf) as session:
        for i in range(len(data.files)):
            wave = data[f"arr_{i}"]
            out[f"features{i}"] = session.audio_features(wave)
            if embeddings == "1":
                out[f"embeddings{i}"] = session.audio_embeddings(wave)
            if prompt and i == 0:
                run = session.prompt_logits(prompt, wave)
                out.update(tokens0=run.tokens, text_positions0=run.text_positions, logits0=run.logits)
    np.savez(outputs, **out)


def extractor_features(checkpoint_dir: str | os.PathLike[str]) -> Callable[[NDArray[np.floating]], NDArray[np.float32]]:
    """waveform -> (frames, mel bins): the checkpoint's Gemma3nAudioFeatureExtractor, as the processor calls it."""
    from transformers import Gemma3nAudioFeatureExtractor

    extractor = Gemma3nAudioFeatureExtractor.from_pretrained(checkpoint_dir)
    return lambda wave: extractor([np.asarray(wave, np.float32)], return_tensors="np")["input_features"][0]


class AudioReference:
    """A multimodal checkpoint in transformers (float32, eager attention, CPU), never loaded whole:
    a clip's soft tokens from the audio tower and ``embed_audio`` alone, and the logits of token
    sequences holding a clip from the layer-streamed text model
    (:mod:`gemma3n_gguf.reference.streamed`), as :class:`~.checks.VisionReference` does for images."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        import torch
        from transformers import Gemma3nAudioFeatureExtractor

        from gemma3n_gguf.reference.streamed import StreamedRunner

        ckpt = Checkpoint(checkpoint_dir)
        self._torch = torch
        self._runner = StreamedRunner(ckpt.directory, with_audio_tower=True)
        self.extractor = Gemma3nAudioFeatureExtractor.from_pretrained(ckpt.directory)
        self.audio_token_id = int(ckpt.config["audio_token_id"])

    def features(self, waveform: NDArray[np.floating]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """(frames, mel bins) features and the mask of valid frames, as the processor makes them."""
        batch = self.extractor([np.asarray(waveform, np.float32)], return_tensors="np")
        return batch["input_features"][0].astype(np.float32), batch["input_features_mask"][0].astype(bool)

    def _model_inputs(self, waveform: NDArray[np.floating]) -> dict[str, Any]:
        features, valid = self.features(waveform)
        return {"input_features": self._torch.from_numpy(features)[None],
                "input_features_mask": self._torch.from_numpy(valid)[None]}

    def soft_tokens(self, waveform: NDArray[np.floating]) -> AudioSoftTokens:
        """The rows the text model gets at the clip's positions (``audio_soft_tokens_per_image`` of them)."""
        return self._runner.audio_features(**self._model_inputs(waveform))

    def logits(self, tokens: NDArray[np.int64], waveform: NDArray[np.floating],
               positions: NDArray[np.int64] | None = None) -> NDArray[np.float32]:
        """Logits at ``positions`` (default: every one) of ``tokens``, whose IMAGE_POSITION entries
        are the clip's soft tokens."""
        ids = np.where(tokens == IMAGE_POSITION, self.audio_token_id, tokens).astype(np.int64)
        hidden = self._runner.final_hidden_states(ids[None], **self._model_inputs(waveform))[0]
        return self._runner.project(hidden if positions is None else hidden[self._torch.from_numpy(positions)])

    def audio_features(self, waveform: NDArray[np.floating]) -> NDArray[np.float32]:
        """``get_audio_features``' embeddings of the clip's valid tokens (no padding rows)."""
        soft = self.soft_tokens(waveform)
        return soft.embeddings[soft.from_tower]

    def padding_embedding(self) -> NDArray[np.float32]:
        """The embedding of the audio vocabulary's last id: the rows after a clip's own tokens."""
        return self._runner.audio_padding_embedding()


@dataclass(frozen=True)
class AudioRuntimeParity:
    """The patched runtime against transformers on one clip and one prompt."""

    n_tokens: int  # soft tokens the runtime feeds the text model
    n_reference_tokens: int  # ... and transformers
    n_encoder_tokens: int  # of which the audio tower's own (the rest is padding)
    min_cosine: float  # per token, over every soft token
    max_abs_diff: float
    padding_max_abs_diff: float  # runtime padding rows vs transformers' padding embedding
    max_feature_diff: float  # mel features, runtime vs Gemma3nAudioFeatureExtractor
    after_audio: ParityStats  # logits at the text positions after the clip
    note: str = RUNTIME_NOTE

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "after_audio"}
        return {**data, "after_audio": self.after_audio.to_dict()}


def audio_runtime_parity(reference: AudioReference, runtime: RuntimeAudio, waveform: NDArray[np.floating]) -> AudioRuntimeParity:
    """Compare ``runtime`` (from :func:`run_in_runtime` with embeddings and a prompt) with
    ``reference`` on ``waveform``."""
    if runtime.embeddings is None or runtime.tokens is None:
        raise ValidationError("the runtime run needs embeddings and a prompt")
    soft = reference.soft_tokens(waveform)
    if len(soft.embeddings) != len(runtime.embeddings):
        raise ValidationError(f"the runtime feeds {len(runtime.embeddings)} audio tokens, "
                              f"transformers {len(soft.embeddings)}")
    n_encoder = int(soft.from_tower.sum())
    padding = np.abs(runtime.embeddings[n_encoder:] - soft.padding_embedding).max(initial=0.0)
    features, _ = reference.features(waveform)
    if features.shape != runtime.features.shape:
        raise ValidationError(f"mel features: runtime {runtime.features.shape}, transformers {features.shape}")
    tokens, positions = runtime.tokens, runtime.text_positions
    after = positions > np.flatnonzero(tokens == IMAGE_POSITION).max()
    if not after.any():
        raise ValidationError("the prompt needs text after its media marker")
    matched = embedding_parity(soft.embeddings, runtime.embeddings)
    return AudioRuntimeParity(
        n_tokens=len(runtime.embeddings), n_reference_tokens=len(soft.embeddings), n_encoder_tokens=n_encoder,
        min_cosine=matched.min_cosine, max_abs_diff=matched.max_abs_diff, padding_max_abs_diff=float(padding),
        max_feature_diff=float(np.abs(features - runtime.features).max()),
        after_audio=parity_stats(reference.logits(tokens, waveform, positions[after]), runtime.logits[after]),
    )
