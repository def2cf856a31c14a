"""Gemma 3n audio in the patched llama.cpp runtime against transformers.

transformers feeds the text model a fixed number of audio soft tokens per clip
(``audio_soft_tokens_per_image``: 188, the tokens of 30 s): the audio tower's tokens, then the
embedding of the audio vocabulary's last id. The patched runtime (``0002-gemma3n-audio.patch``)
does the same, so embeddings and the logits after an audio prompt compare one to one:

- :class:`AudioReference`: the checkpoint in transformers, whole (float32, eager, CPU): the
  rows its text model receives at the audio positions (captured from its forward), and the
  logits of a token sequence holding a clip;
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
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.errors import RuntimeUnavailableError, ValidationError
from gemma3n_gguf.validate.metrics.parity import ParityStats, parity_stats
from gemma3n_gguf.validate.multimodal.mtmd import IMAGE_POSITION

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
    """A multimodal checkpoint in transformers, whole: what ``Gemma3nForConditionalGeneration``
    feeds its text model for a clip, and the logits it gives."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        import torch
        from transformers import Gemma3nAudioFeatureExtractor, Gemma3nForConditionalGeneration

        self._torch = torch
        self.model = Gemma3nForConditionalGeneration.from_pretrained(
            checkpoint_dir, dtype=torch.float32, attn_implementation="eager").eval()
        self.extractor = Gemma3nAudioFeatureExtractor.from_pretrained(checkpoint_dir)
        self.audio_token_id = int(self.model.config.audio_token_id)
        self.n_soft_tokens = int(self.model.config.audio_soft_tokens_per_image)

    def features(self, waveform: NDArray[np.floating]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """(frames, mel bins) features and the mask of valid frames, as the processor makes them."""
        batch = self.extractor([np.asarray(waveform, np.float32)], return_tensors="np")
        return batch["input_features"][0].astype(np.float32), batch["input_features_mask"][0].astype(bool)

    def run(self, tokens: NDArray[np.int64], waveform: NDArray[np.floating]) -> tuple[NDArray, NDArray]:
        """(rows the text model gets at the audio positions, logits at every position) for
        ``tokens`` whose IMAGE_POSITION entries are the clip's soft tokens."""
        torch = self._torch
        ids = np.where(tokens == IMAGE_POSITION, self.audio_token_id, tokens).astype(np.int64)
        features, valid = self.features(waveform)
        captured: dict[str, Any] = {}

        def capture(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
            captured["embeds"] = kwargs["inputs_embeds"][0].detach().clone()

        hook = self.model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with torch.inference_mode():
                out = self.model(input_ids=torch.from_numpy(ids)[None], input_features=torch.from_numpy(features)[None],
                                 input_features_mask=torch.from_numpy(valid)[None], use_cache=False)
        finally:
            hook.remove()
        soft = captured["embeds"][torch.from_numpy(ids == self.audio_token_id)].numpy()
        return soft, out.logits[0].float().numpy()

    def audio_features(self, waveform: NDArray[np.floating]) -> NDArray[np.float32]:
        """``get_audio_features``' embeddings of the clip's valid tokens (no padding rows)."""
        torch = self._torch
        features, valid = self.features(waveform)
        with torch.inference_mode():
            out = self.model.model.get_audio_features(torch.from_numpy(features)[None], torch.from_numpy(~valid)[None])
        return out.pooler_output[0][~out.audio_mel_mask[0]].numpy()

    def padding_embedding(self) -> NDArray[np.float32]:
        """The embedding of the audio vocabulary's last id: the rows after a clip's own tokens."""
        torch = self._torch
        with torch.inference_mode():
            last = torch.tensor([[self.model.model.vocab_size - 1]])
            return self.model.model.embed_audio(input_ids=last)[0, 0].numpy()


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
    from gemma3n_gguf.validate.multimodal.checks import embedding_parity

    if runtime.embeddings is None or runtime.tokens is None:
        raise ValidationError("the runtime run needs embeddings and a prompt")
    soft, logits = reference.run(runtime.tokens, waveform)
    if len(soft) != len(runtime.embeddings):
        raise ValidationError(f"the runtime feeds {len(runtime.embeddings)} audio tokens, transformers {len(soft)}")
    n_encoder = len(reference.audio_features(waveform))
    padding = np.abs(runtime.embeddings[n_encoder:] - reference.padding_embedding()).max(initial=0.0)
    features, _ = reference.features(waveform)
    if features.shape != runtime.features.shape:
        raise ValidationError(f"mel features: runtime {runtime.features.shape}, transformers {features.shape}")
    tokens, positions = runtime.tokens, runtime.text_positions
    after = positions > np.flatnonzero(tokens == IMAGE_POSITION).max()
    if not after.any():
        raise ValidationError("the prompt needs text after its media marker")
    matched = embedding_parity(soft, runtime.embeddings)
    return AudioRuntimeParity(
        n_tokens=len(runtime.embeddings), n_reference_tokens=len(soft), n_encoder_tokens=n_encoder,
        min_cosine=matched.min_cosine, max_abs_diff=matched.max_abs_diff, padding_max_abs_diff=float(padding),
        max_feature_diff=float(np.abs(features - runtime.features).max()),
        after_audio=parity_stats(logits[positions[after]], runtime.logits[after]),
    )
