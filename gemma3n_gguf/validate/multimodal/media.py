"""Images and audio for multimodal validation: reading them, and the hook to the parity functions.

Files are read (and refused with one clear error) before any model is loaded. The parity
itself belongs to the projector work, ``gemma3n_gguf.validate.multimodal``; this module calls
it through :func:`media_parity`, the one place that knows its interface
(``image_parity`` and ``audio_parity``):

- ``image_parity(model_gguf, mmproj_gguf, reference_dir, image)`` with ``image`` a uint8
  (height, width, 3) array, returning an object with ``embedding_cosine`` (minimum over the
  image's tokens), ``max_abs_delta`` and optionally ``prompt_kld`` / ``prompt_top1`` (the
  image-prompt comparison);
- ``audio_parity(mmproj_gguf, reference_dir, waveform, sample_rate, text_gguf)`` with a float32
  mono waveform in [-1, 1], returning ``embedding_cosine``, ``max_abs_delta``, optionally
  ``prompt_kld`` / ``prompt_top1``, and ``note`` (how it was measured: in the patched llama.cpp
  runtime, or on the reference path when that runtime is not built).
"""

from __future__ import annotations

import os
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.errors import RuntimeUnavailableError, ValidationError


@dataclass(frozen=True, eq=False)  # holds arrays
class ImageInput:
    path: Path
    pixels: NDArray[np.uint8]  # (height, width, 3) RGB


@dataclass(frozen=True, eq=False)  # holds arrays
class AudioInput:
    path: Path
    waveform: NDArray[np.float32]  # mono, [-1, 1]
    sample_rate: int


@dataclass(frozen=True)
class MediaParity:
    """One image or audio file compared between the reference and the candidate."""

    kind: str  # "image" or "audio"
    source: str
    embedding_cosine: float
    max_abs_delta: float | None = None
    prompt_kld: float | None = None
    prompt_top1: float | None = None
    note: str | None = None
    """How it was measured, when not obvious (audio: in the patched runtime or on the reference path)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_image(path: str | os.PathLike[str]) -> ImageInput:
    from PIL import Image, UnidentifiedImageError

    source = Path(path)
    try:
        with Image.open(source) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise ValidationError(f"image {source} does not exist") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise ValidationError(f"cannot read image {source}: {exc}") from None
    return ImageInput(source, pixels)


def read_audio(path: str | os.PathLike[str]) -> AudioInput:
    """A PCM WAV file (8/16/32-bit integer), channels averaged to mono."""
    source = Path(path)
    try:
        with wave.open(str(source), "rb") as stream:
            width, channels, rate = stream.getsampwidth(), stream.getnchannels(), stream.getframerate()
            frames = stream.readframes(stream.getnframes())
    except FileNotFoundError:
        raise ValidationError(f"audio file {source} does not exist") from None
    except (wave.Error, EOFError, OSError, RuntimeError) as exc:  # wave raises RuntimeError on a bad chunk size
        raise ValidationError(f"cannot read audio {source}: {exc or 'corrupt chunk'} (a PCM WAV file is expected)") from None
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in dtypes or not frames:
        raise ValidationError(f"cannot read audio {source}: {8 * width}-bit or empty PCM is not supported")
    if channels < 1 or len(frames) % (width * channels):
        raise ValidationError(f"cannot read audio {source}: its data is cut inside a frame (a damaged WAV file)")
    samples = np.frombuffer(frames, dtype=dtypes[width]).astype(np.float32)
    if width == 1:
        samples -= 128.0
    samples /= float(2 ** (8 * width - 1))
    mono = samples.reshape(-1, channels).mean(axis=1)
    return AudioInput(source, mono.astype(np.float32), rate)


def read_media(
    images: Sequence[str | os.PathLike[str]], audios: Sequence[str | os.PathLike[str]]
) -> tuple[list[ImageInput], list[AudioInput]]:
    return [read_image(p) for p in images], [read_audio(p) for p in audios]


def media_parity(
    model_gguf: Path,
    mmproj_gguf: Path | None,
    reference_dir: Path,
    images: Sequence[ImageInput],
    audios: Sequence[AudioInput],
) -> list[MediaParity]:
    """Run the projector work's parity functions on each image and audio file."""
    if not images and not audios:
        return []
    if mmproj_gguf is None:
        raise ValidationError("--image/--audio need the projector GGUF: pass --mmproj")
    module = _multimodal_module()
    results = [_image_result(module, model_gguf, mmproj_gguf, reference_dir, image) for image in images]
    results += [_audio_result(module, model_gguf, mmproj_gguf, reference_dir, audio) for audio in audios]
    return results


def _multimodal_module() -> Any:
    try:
        from gemma3n_gguf.validate.multimodal import checks as multimodal
    except ImportError as exc:
        raise RuntimeUnavailableError(
            "image and audio parity need gemma3n_gguf.validate.multimodal (the projector work), "
            f"which this installation lacks ({exc}); validate the text model without --image/--audio"
        ) from None
    return multimodal


def _image_result(module: Any, model: Path, mmproj: Path, reference: Path, image: ImageInput) -> MediaParity:
    result = module.image_parity(model, mmproj, reference, image.pixels)
    return MediaParity(
        "image", str(image.path), float(result.embedding_cosine),
        _optional(result, "max_abs_delta"), _optional(result, "prompt_kld"), _optional(result, "prompt_top1"),
    )


def _audio_result(module: Any, model: Path, mmproj: Path, reference: Path, audio: AudioInput) -> MediaParity:
    result = module.audio_parity(mmproj, reference, audio.waveform, audio.sample_rate, model)
    return MediaParity("audio", str(audio.path), float(result.embedding_cosine), _optional(result, "max_abs_delta"),
                       _optional(result, "prompt_kld"), _optional(result, "prompt_top1"),
                       note=getattr(result, "note", None))


def _optional(result: Any, name: str) -> float | None:
    value = getattr(result, name, None)
    return None if value is None else float(value)
