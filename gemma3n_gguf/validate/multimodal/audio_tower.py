"""transformers' Gemma 3n audio path (feature extractor, USM conformer tower, audio embedder),
built either from a checkpoint or from the weights and settings stored in a projector GGUF.

Stock llama.cpp has no Gemma 3n audio graph (``gemma3na`` is declared in ``clip-impl.h`` and
nowhere else); without the patched runtime (:mod:`gemma3n_gguf.validate.multimodal.audio_runtime`)
a projector's audio half is checked on this reference path: the GGUF's tensors are dequantized
and run by transformers' own modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.gguf_read import open_gguf
from gemma3n_gguf.convert.projector.config import PREPROCESSOR_FILE
from gemma3n_gguf.convert.projector.metadata import read_audio_settings
from gemma3n_gguf.convert.projector.names import classify
from gemma3n_gguf.core.errors import (
    CheckpointError,
    ConfigError,
    GGUFFileError,
    RuntimeUnavailableError,
    ValidationError,
)

AUDIO_TOWER = "model.audio_tower."
AUDIO_EMBEDDER = "model.embed_audio."


@dataclass
class AudioStack:
    """Waveform -> mel features -> conformer -> embedder, as ``get_audio_features`` runs it."""

    encoder: Any  # Gemma3nAudioEncoder
    embedder: Any  # Gemma3nMultimodalEmbedder
    feature_extractor: Any  # Gemma3nAudioFeatureExtractor

    def features(self, waveform: NDArray[np.floating]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """(frames, mel bins) features and the mask of valid frames."""
        batch = self.feature_extractor([np.asarray(waveform, np.float32)], return_tensors="np")
        return batch["input_features"][0].astype(np.float32), batch["input_features_mask"][0].astype(bool)

    def embed(self, features: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
        """(tokens, text hidden) embeddings of the valid audio tokens."""
        import torch

        with torch.inference_mode():
            out = self.encoder(torch.from_numpy(features)[None], torch.from_numpy(~valid)[None], return_dict=True)
            embeddings = self.embedder(inputs_embeds=out.last_hidden_state)[0]
            keep = ~out.audio_mel_mask[0]
        return embeddings[keep].numpy().astype(np.float32)


def _transformers() -> Any:
    try:
        from transformers.models.gemma3n import modeling_gemma3n
    except ImportError as exc:
        raise RuntimeUnavailableError(f"the audio reference path needs transformers: {exc}") from exc
    return modeling_gemma3n


def _build(audio_config: dict, projection_dim: int, feature_extractor: Any, weights: dict[str, NDArray]) -> AudioStack:
    import torch

    from transformers import Gemma3nAudioConfig

    modeling = _transformers()
    config = Gemma3nAudioConfig(**audio_config)
    encoder = modeling.Gemma3nAudioEncoder(config).eval()
    embedder = modeling.Gemma3nMultimodalEmbedder(config, SimpleNamespace(hidden_size=projection_dim)).eval()
    for module, prefix in ((encoder, AUDIO_TOWER), (embedder, AUDIO_EMBEDDER)):
        state = {name: torch.from_numpy(np.array(weights[prefix + name], np.float32)).reshape(p.shape)
                 for name, p in module.state_dict().items()}
        module.load_state_dict(state, strict=True)
    return AudioStack(encoder, embedder, feature_extractor)


def _extractor_kwargs(settings: dict) -> dict:
    """Constructor arguments of Gemma3nAudioFeatureExtractor, which takes frame and hop
    lengths in milliseconds and derives the FFT length (checked against the stored one)."""
    rate = int(settings["sampling_rate"])
    kwargs = {k: v for k, v in settings.items() if k not in ("frame_length", "hop_length", "fft_length")}
    kwargs["frame_length_ms"] = int(settings["frame_length"]) * 1000.0 / rate
    kwargs["hop_length_ms"] = int(settings["hop_length"]) * 1000.0 / rate
    frame = int(settings["frame_length"])
    fft = 2 ** int(np.ceil(np.log2(frame))) * (2 if settings["fft_overdrive"] else 1)
    if fft != int(settings["fft_length"]):
        raise ValidationError(f"fft_length {settings['fft_length']} does not follow from frame_length {frame} "
                              f"and fft_overdrive {settings['fft_overdrive']} ({fft})")
    return kwargs


def _tower_names(audio_config: dict) -> list[str]:
    """Checkpoint names of every audio tower and embedder parameter, from a meta-device build."""
    import torch

    from transformers import Gemma3nAudioConfig

    modeling = _transformers()
    config = Gemma3nAudioConfig(**audio_config)
    with torch.device("meta"):
        encoder = modeling.Gemma3nAudioEncoder(config)
        embedder = modeling.Gemma3nMultimodalEmbedder(config, SimpleNamespace(hidden_size=8))
    return [AUDIO_TOWER + n for n in encoder.state_dict()] + [AUDIO_EMBEDDER + n for n in embedder.state_dict()]


def audio_stack_from_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> AudioStack:
    """The reference: the checkpoint's own audio weights and feature extractor settings."""
    ckpt = Checkpoint(checkpoint_dir)
    audio_config = ckpt.config.get("audio_config")
    if not isinstance(audio_config, dict) or AUDIO_EMBEDDER + "embedding.weight" not in ckpt:
        raise ConfigError(f"{ckpt.directory} has no audio tower to validate")
    from transformers import Gemma3nAudioFeatureExtractor

    if not (ckpt.directory / PREPROCESSOR_FILE).is_file():
        raise CheckpointError(f"{ckpt.directory / PREPROCESSOR_FILE} is missing: the feature extractor is unknown")
    extractor = Gemma3nAudioFeatureExtractor.from_pretrained(ckpt.directory)
    weights = {name: ckpt.read(name) for name in _tower_names(audio_config)}
    text_hidden = int(ckpt.config["text_config"]["hidden_size"])
    return _build(audio_config, text_hidden, extractor, weights)


def audio_stack_from_gguf(mmproj_path: str | os.PathLike[str]) -> AudioStack:
    """The candidate: config, settings and dequantized weights read back from the projector."""
    from gguf.quants import dequantize

    path = Path(mmproj_path)
    reader = open_gguf(path)
    if "clip.has_audio_encoder" not in reader:
        raise GGUFFileError(f"{path} holds no audio encoder")
    audio_config, settings = read_audio_settings(reader)
    projection_dim = reader.value("clip.audio.projection_dim")
    if not isinstance(projection_dim, int):
        raise GGUFFileError(f"{path}: clip.audio.projection_dim is missing or not an integer")
    tensors = {t.name: t for t in reader.tensors}
    n_layers, n_convs = int(audio_config["conf_num_hidden_layers"]), len(audio_config["sscp_conv_channel_size"])
    weights = {}
    for hf_name in _tower_names(audio_config):
        mapped = classify(hf_name, n_layers, n_convs)
        if mapped is None or mapped.gguf not in tensors:
            raise GGUFFileError(f"{path} lacks the tensor for {hf_name}")
        t = tensors[mapped.gguf]
        weights[hf_name] = dequantize(np.asarray(t.data), t.tensor_type)
    from transformers import Gemma3nAudioFeatureExtractor

    return _build(audio_config, projection_dim, Gemma3nAudioFeatureExtractor(**_extractor_kwargs(settings)), weights)
