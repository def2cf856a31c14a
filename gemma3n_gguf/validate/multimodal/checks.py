"""Multimodal parity: a converted text GGUF + projector GGUF against transformers.

- Images: transformers' ``get_image_features`` against the embeddings llama.cpp's mtmd
  makes (:func:`image_embedding_parity`), and the logits of a prompt holding an image
  (:func:`image_prompt_parity`).
- Audio: with the patched runtime built (``python -m gemma3n_gguf.runtime.build``, whose
  ``0002-gemma3n-audio.patch`` runs Gemma 3n's audio tower in mtmd), the soft tokens and the
  logits after an audio prompt are compared with transformers
  (:mod:`gemma3n_gguf.validate.multimodal.audio_runtime`). Stock llama.cpp has no Gemma 3n
  audio graph: without the patched runtime, audio is validated on the reference path: the
  projector's audio tensors and settings are read back, dequantized and run by transformers'
  own audio tower and ``embed_audio``, and compared with the checkpoint's on synthesised
  waveforms (:func:`audio_round_trip`).

Images are compared at the model's square image size, where neither side resizes: llama.cpp
pads other shapes while transformers stretches them, which would measure preprocessing, not
the encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.convert.projector.config import VisionConfig, read_projector_config
from gemma3n_gguf.core.errors import RuntimeUnavailableError, ValidationError
from gemma3n_gguf.validate.multimodal.audio_runtime import (
    AUDIO_PROMPT,
    AudioReference,
    audio_runtime_parity,
    run_in_runtime,
)
from gemma3n_gguf.validate.multimodal.audio_tower import audio_stack_from_checkpoint, audio_stack_from_gguf
from gemma3n_gguf.validate.multimodal.mtmd import IMAGE_POSITION, MtmdSession
from gemma3n_gguf.validate.metrics.embedding import EmbeddingParity, embedding_parity
from gemma3n_gguf.validate.metrics.parity import ParityStats, parity_stats

AUDIO_NOTE = ("audio validated on the reference path, not in llama.cpp: stock llama.cpp has no Gemma 3n audio "
              "graph, so the projector's audio weights were dequantized and run by transformers")
NO_RUNTIME_NOTE = " (the patched runtime that runs it is not built: gemma3n-gguf runtime build, or python -m gemma3n_gguf.runtime.build)"
DEFAULT_PROMPT = "Describe this image: <__media__> What is shown, and in which colours?"


# -- embeddings -------------------------------------------------------------------------


# -- images -----------------------------------------------------------------------------


def synthetic_image(size: int = 768, seed: int = 0) -> NDArray[np.uint8]:
    """A deterministic RGB test image: colour ramps, a disc, stripes and seeded noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.04
    stripes = (np.sin(40 * np.pi * (x + 0.5 * y)) > 0) & (y > 0.7)
    image = np.stack([255 * x, 255 * y, 255 * (1 - x) * y], axis=-1)
    image[disc] = (250, 40, 30)
    image[stripes] = (20, 20, 20)
    return np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)


class VisionReference:
    """The checkpoint in transformers (float32, eager attention, CPU), never loaded whole: image
    features from the vision tower and ``embed_vision`` alone, and the logits of token sequences
    whose image positions hold an image's features from the layer-streamed text model
    (:mod:`gemma3n_gguf.reference.streamed`)."""

    def __init__(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        import torch

        from gemma3n_gguf.reference.streamed import StreamedRunner

        ckpt = Checkpoint(checkpoint_dir)
        self.vision: VisionConfig = read_projector_config(ckpt.directory, ckpt.config, with_audio=False).vision
        self.image_token_id = int(ckpt.config["image_token_id"])
        self._torch = torch
        self._runner = StreamedRunner(ckpt.directory, with_vision_tower=True)

    def pixel_values(self, image: NDArray[np.uint8]) -> Any:
        size = self.vision.image_size
        if image.shape != (size, size, 3):
            raise ValidationError(f"compare images at the model's size {size}x{size}x3 (got {image.shape}): "
                                  "llama.cpp pads other shapes, transformers stretches them")
        mean = np.asarray(self.vision.image_mean, np.float32)
        std = np.asarray(self.vision.image_std, np.float32)
        pixels = (image.astype(np.float32) / 255.0 - mean) / std
        return self._torch.from_numpy(pixels).permute(2, 0, 1)[None]

    def image_features(self, image: NDArray[np.uint8]) -> NDArray[np.float32]:
        return self._runner.image_features(self.pixel_values(image))

    def logits(self, tokens: NDArray[np.int64], image: NDArray[np.uint8]) -> NDArray[np.float32]:
        ids = np.where(tokens == IMAGE_POSITION, self.image_token_id, tokens).astype(np.int64)
        hidden = self._runner.final_hidden_states(ids[None], pixel_values=self.pixel_values(image))
        return self._runner.project(hidden[0])


def image_embedding_parity(reference: VisionReference, session: MtmdSession,
                           image: NDArray[np.uint8] | None = None) -> EmbeddingParity:
    """transformers' ``get_image_features`` against mtmd's encoding of the same image."""
    image = synthetic_image(reference.vision.image_size) if image is None else image
    return embedding_parity(reference.image_features(image), session.image_embeddings(image))


@dataclass(frozen=True)
class PromptParity:
    """Logit agreement on the text of an image prompt, before and after the image."""

    n_image_tokens: int
    before_image: ParityStats
    after_image: ParityStats
    first_after_image_max_abs_dlogit: float  # the row of <end_of_image>, the hard token mtmd appends

    def to_dict(self) -> dict[str, Any]:
        return {"n_image_tokens": self.n_image_tokens, "before_image": self.before_image.to_dict(),
                "after_image": self.after_image.to_dict(),
                "first_after_image_max_abs_dlogit": self.first_after_image_max_abs_dlogit}


def image_prompt_parity(reference: VisionReference, session: MtmdSession, prompt: str = DEFAULT_PROMPT,
                        image: NDArray[np.uint8] | None = None) -> PromptParity:
    """transformers vs llama.cpp logits at every text position of ``prompt``, whose media
    marker (``<__media__>``) mtmd replaces by ``<start_of_image>`` + image + ``<end_of_image>``."""
    image = synthetic_image(reference.vision.image_size) if image is None else image
    run = session.prompt_logits(prompt, image)
    ref = reference.logits(run.tokens, image)[run.text_positions]
    image_end = int(np.flatnonzero(run.tokens == IMAGE_POSITION).max())
    after = run.text_positions > image_end
    if after.all() or not after.any():
        raise ValidationError("the prompt needs text both before and after its media marker")
    first = int(np.flatnonzero(after)[0])
    return PromptParity(
        n_image_tokens=int((run.tokens == IMAGE_POSITION).sum()),
        before_image=parity_stats(ref[~after], run.logits[~after]),
        after_image=parity_stats(ref[after], run.logits[after]),
        first_after_image_max_abs_dlogit=float(np.abs(ref[first] - run.logits[first]).max()),
    )


# -- audio ------------------------------------------------------------------------------


def synthetic_waveforms(sample_rate: int = 16000, seconds: float = 2.0) -> dict[str, NDArray[np.float32]]:
    """Deterministic test signals: a harmonic tone, a log chirp, an amplitude-modulated tone in noise."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    f0, f1 = 100.0, min(6000.0, 0.4 * sample_rate)
    phase = 2 * np.pi * f0 * seconds / np.log(f1 / f0) * ((f1 / f0) ** (t / seconds) - 1)
    noise = np.random.default_rng(0).normal(0, 0.02, t.shape)
    waves = {
        "harmonic_tone": sum(0.4 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 5)),
        "log_chirp": 0.5 * np.sin(phase),
        "am_tone_in_noise": 0.4 * (1 + np.sin(2 * np.pi * 3 * t)) / 2 * np.sin(2 * np.pi * 1000 * t) + noise,
    }
    return {name: wave.astype(np.float32) for name, wave in waves.items()}


@dataclass(frozen=True)
class AudioRoundTrip:
    """Audio embeddings of the projector's dequantized audio tower vs the checkpoint's."""

    per_waveform: dict[str, EmbeddingParity]
    max_feature_diff: float  # mel features from the GGUF's settings vs the checkpoint's extractor
    note: str = AUDIO_NOTE

    @property
    def min_cosine(self) -> float:
        return min(p.min_cosine for p in self.per_waveform.values())

    @property
    def max_abs_diff(self) -> float:
        return max(p.max_abs_diff for p in self.per_waveform.values())

    def to_dict(self) -> dict[str, Any]:
        return {"note": self.note, "min_cosine": self.min_cosine, "max_abs_diff": self.max_abs_diff,
                "max_feature_diff": self.max_feature_diff,
                "per_waveform": {k: v.to_dict() for k, v in self.per_waveform.items()}}


def audio_round_trip(checkpoint_dir: str | os.PathLike[str], mmproj_gguf: str | os.PathLike[str],
                     waveforms: dict[str, NDArray[np.floating]] | None = None) -> AudioRoundTrip:
    """Run both audio paths on ``waveforms`` (default :func:`synthetic_waveforms`). See AUDIO_NOTE."""
    reference = audio_stack_from_checkpoint(checkpoint_dir)
    candidate = audio_stack_from_gguf(mmproj_gguf)
    if waveforms is None:
        waveforms = synthetic_waveforms(int(candidate.feature_extractor.sampling_rate))
    results, feature_diff = {}, 0.0
    for name, wave in waveforms.items():
        ref_features, ref_valid = reference.features(wave)
        features, valid = candidate.features(wave)
        if features.shape != ref_features.shape or not np.array_equal(valid, ref_valid):
            raise ValidationError(f"{name}: the projector's feature settings give {features.shape} features, "
                                  f"the checkpoint's {ref_features.shape}")
        feature_diff = max(feature_diff, float(np.abs(features - ref_features).max()))
        results[name] = embedding_parity(reference.embed(ref_features, ref_valid), candidate.embed(features, valid))
    return AudioRoundTrip(results, feature_diff)


# -- one file at a time (what `gemma3n-gguf validate --image/--audio` calls) ----------------


@dataclass(frozen=True)
class ImageParity:
    embedding: EmbeddingParity
    prompt: PromptParity

    @property
    def embedding_cosine(self) -> float:
        return self.embedding.min_cosine

    @property
    def max_abs_delta(self) -> float:
        return self.embedding.max_abs_diff

    @property
    def prompt_kld(self) -> float:
        return self.prompt.after_image.mean_kld

    @property
    def prompt_top1(self) -> float:
        return self.prompt.after_image.top1_agreement


@dataclass(frozen=True)
class AudioParity:
    """One clip: the runtime's soft tokens and prompt logits against transformers, or (no
    patched runtime) the reference path's embeddings, ``note`` saying which."""

    embedding_cosine: float
    max_abs_delta: float
    note: str = AUDIO_NOTE
    prompt_kld: float | None = None
    prompt_top1: float | None = None
    n_tokens: int = 0


def to_model_square(image: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """``image`` stretched to size x size (bilinear, as transformers' processor resizes), so
    both runtimes see the same pixels and neither resizes again."""
    if image.shape[:2] == (size, size):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def image_parity(text_gguf: str | os.PathLike[str], mmproj_gguf: str | os.PathLike[str],
                 checkpoint_dir: str | os.PathLike[str], image: NDArray[np.uint8]) -> ImageParity:
    """Embeddings and prompt logits of one RGB image (any size; see :func:`to_model_square`).
    Loads the checkpoint in transformers and both GGUFs in llama.cpp for this one call."""
    reference = VisionReference(checkpoint_dir)
    pixels = to_model_square(image, reference.vision.image_size)
    with MtmdSession(text_gguf, mmproj_gguf) as session:
        return ImageParity(image_embedding_parity(reference, session, pixels),
                           image_prompt_parity(reference, session, DEFAULT_PROMPT, pixels))


def audio_parity(mmproj_gguf: str | os.PathLike[str], checkpoint_dir: str | os.PathLike[str],
                 waveform: NDArray[np.floating], sample_rate: int,
                 text_gguf: str | os.PathLike[str] | None = None) -> AudioParity:
    """One mono waveform, resampled linearly to 16 kHz if needed (both sides get the same
    samples): in the patched runtime when it is built and ``text_gguf`` is given, else on the
    reference path (see AUDIO_NOTE)."""
    target = int(audio_stack_from_gguf(mmproj_gguf).feature_extractor.sampling_rate)
    wave = np.asarray(waveform, np.float32)
    if sample_rate != target:
        positions = np.arange(int(len(wave) * target / sample_rate)) * (sample_rate / target)
        wave = np.interp(positions, np.arange(len(wave)), wave).astype(np.float32)
    lib_dir = patched_runtime_dir()
    if lib_dir is not None and text_gguf is not None:
        run = run_in_runtime(lib_dir, text_gguf, mmproj_gguf, [wave], prompt=AUDIO_PROMPT)[0]
        stats = audio_runtime_parity(AudioReference(checkpoint_dir), run, wave)
        return AudioParity(stats.min_cosine, stats.max_abs_diff, stats.note, stats.after_audio.mean_kld,
                           stats.after_audio.top1_agreement, stats.n_tokens)
    embedding = audio_round_trip(checkpoint_dir, mmproj_gguf, {"input": wave}).per_waveform["input"]
    note = AUDIO_NOTE + (NO_RUNTIME_NOTE if lib_dir is None else " (no text model given)")
    return AudioParity(embedding.min_cosine, embedding.max_abs_diff, note, n_tokens=embedding.n_tokens)


def patched_runtime_dir() -> Path | None:
    """The cached patched runtime of every patch, or None when it is not built."""
    from gemma3n_gguf.runtime.build import build_runtime

    try:
        return build_runtime(fetch=False)
    except RuntimeUnavailableError:
        return None
