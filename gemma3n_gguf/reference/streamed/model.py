"""transformers' own Gemma 3n model, assembled so that one decoder layer is resident at a time.

The model is built on the meta device (no memory), then only what a forward pass over a few
windows needs is made real:

- the two embedding tables become :class:`RowGatheringEmbedding`: each call reads only the rows
  of the ids it is given (a 512-token window needs 512 of the PLE table's 262,144 rows);
- each decoder layer becomes a :class:`StreamedDecoderLayer`: transformers'
  ``Gemma3nTextDecoderLayer``, built and filled from the checkpoint when called and dropped
  when it returns;
- the small global modules (per-layer input projection and norm, AltUp projections, final
  norm, rotary embedding and, in a multimodal checkpoint, the vision and audio token embedders)
  are loaded once and stay.

The forward pass itself is transformers' (``Gemma3nModel.forward`` or ``Gemma3nTextModel.forward``)
over a batch of windows: masks, rotary embeddings, AltUp predict/correct, LAuReL, per-layer inputs
and the KV-sharing store all run as in the full model, and the batch goes through the layers one
layer at a time, its activations kept between layers. The vision and audio towers stay on the
meta device: text windows never reach them. With ``with_vision_tower`` the vision tower is loaded
too (for image features and image prompts), with ``with_audio_tower`` the audio tower (for audio
features and audio prompts): each alone, from its own tensors, never the whole model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from transformers import AutoModel
from transformers.initialization import no_init_weights
from transformers.models.gemma3n import modeling_gemma3n as hf

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.reference.streamed.weights import CheckpointWeights

LayerCallback = Callable[[int, Any], None]  # (layer index, the loaded Gemma3nTextDecoderLayer)


def build_streamed_model(weights: CheckpointWeights, on_layer_loaded: LayerCallback | None = None, *,
                         with_vision_tower: bool = False, with_audio_tower: bool = False) -> Any:
    """``Gemma3nModel`` (or ``Gemma3nTextModel``) whose forward streams its layers from ``weights``."""
    for wanted, tower in ((with_vision_tower, "vision"), (with_audio_tower, "audio")):
        if wanted and not weights.multimodal:
            raise ConfigError(f"{weights.checkpoint.directory} is a text-only checkpoint: it has no {tower} tower")
    model_class = hf.Gemma3nModel if weights.multimodal else hf.Gemma3nTextModel
    with torch.device("meta"):
        model = model_class(copy.deepcopy(weights.config))  # timm's builder consumes the vision config
    text = model.language_model if weights.multimodal else model
    text.layers = torch.nn.ModuleList(
        StreamedDecoderLayer(weights, index, on_layer_loaded) for index in range(len(text.layers))
    )
    text.embed_tokens = RowGatheringEmbedding(weights, weights.embedding_name, text.embed_tokens.scalar_embed_scale)
    text.embed_tokens_per_layer = RowGatheringEmbedding(
        weights, weights.ple_name, text.embed_tokens_per_layer.scalar_embed_scale
    )
    resident = {weights.text_prefix: text}
    if weights.multimodal:
        resident.update({"model.embed_vision.": model.embed_vision, "model.embed_audio.": model.embed_audio})
    for prefix, module in resident.items():
        module.to_empty(device="cpu")
        weights.fill_module(module, prefix)
    text.rotary_emb = hf.Gemma3nRotaryEmbedding(weights.text_config)
    text._init_weights(text)  # its non-persistent scale buffers, as from_pretrained sets them
    if with_vision_tower:
        model.vision_tower = load_vision_tower(weights)
    if with_audio_tower:
        model.audio_tower = load_audio_tower(weights)
    return model.eval()


def load_vision_tower(weights: CheckpointWeights) -> Any:
    """transformers' vision tower of a multimodal checkpoint, alone, with its float32 weights."""
    return _load_tower(weights, weights.config.vision_config, "model.vision_tower.")


def load_audio_tower(weights: CheckpointWeights) -> Any:
    """transformers' audio tower (``Gemma3nAudioEncoder``) of a multimodal checkpoint, alone, float32."""
    return _load_tower(weights, weights.config.audio_config, "model.audio_tower.")


def _load_tower(weights: CheckpointWeights, tower_config: Any, prefix: str) -> Any:
    with no_init_weights():  # the stored weights replace the parameters: skip random init
        tower = AutoModel.from_config(copy.deepcopy(tower_config))
    weights.fill_module(tower, prefix)
    return tower.eval()


class RowGatheringEmbedding(torch.nn.Module):
    """``Gemma3nTextScaledWordEmbedding`` reading only the rows of the ids it is called with.

    It holds no parameters or buffers, so moving or filling the model around it never touches it.
    """

    def __init__(self, weights: CheckpointWeights, tensor_name: str, embed_scale: float) -> None:
        super().__init__()
        self._weights = weights
        self._name = tensor_name
        # the same float32 scalar as the module's ``embed_scale`` buffer
        self._scale = torch.tensor(embed_scale)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.numpy()
        unique, local = np.unique(ids, return_inverse=True)
        rows = torch.from_numpy(self._weights.gather_rows(self._name, unique))
        local_ids = torch.from_numpy(local.reshape(ids.shape))
        return torch.nn.functional.embedding(local_ids, rows) * self._scale.to(rows.dtype)


class StreamedDecoderLayer(torch.nn.Module):
    """Stands in for decoder layer ``index``: builds it from the checkpoint for one call, then drops it."""

    def __init__(self, weights: CheckpointWeights, index: int, on_loaded: LayerCallback | None) -> None:
        super().__init__()
        self._weights = weights
        self.index = index
        self._on_loaded = on_loaded

    def load(self) -> Any:
        """transformers' ``Gemma3nTextDecoderLayer`` ``index`` with the checkpoint's float32 weights."""
        with no_init_weights():  # the stored weights replace the parameters: skip random init
            layer = hf.Gemma3nTextDecoderLayer(self._weights.text_config, self.index)
        self._weights.fill_module(layer, f"{self._weights.text_prefix}layers.{self.index}.")
        return layer.eval()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        layer = self.load()
        if self._on_loaded is not None:
            self._on_loaded(self.index, layer)
        return layer(*args, **kwargs)
