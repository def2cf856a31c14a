"""The layer-streamed fp32 reference: the logits of transformers' Gemma 3n without holding the model.

Windows go through the model in groups sized to a memory budget: a group's activations are kept
between layers while each decoder layer is read, run over every window of the group and dropped.
The LM head (the 262,400-row embedding table of E2B/E4B when tied) is read in vocabulary chunks
of a few dozen MiB and projected window by window, so the largest arrays are one window's scored
logits (n_ctx / 2 rows x vocabulary) and one vocabulary chunk.

:class:`StreamedRunner` is a :class:`~gemma3n_gguf.reference.runners.LogitRunner`: it yields what
:class:`~gemma3n_gguf.reference.runners.TransformersRunner` yields, to within float32 rounding of
the differently blocked matrix products (tests/reference/test_streamed.py bounds it). With a tower
loaded it also gives what a multimodal checkpoint feeds its text model for an image or a clip
(:meth:`StreamedRunner.image_features`, :meth:`StreamedRunner.audio_features`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.reference.runners import ProgressCallback, transformers_settings
from gemma3n_gguf.reference.streamed.model import LayerCallback, build_streamed_model
from gemma3n_gguf.reference.streamed.weights import VOCAB_CHUNK_BYTES, CheckpointWeights

DEFAULT_GROUP_BYTES = 768 << 20  # activations of the windows in flight


@dataclass(frozen=True)
class AudioSoftTokens:
    """The rows ``Gemma3nModel.forward`` puts at one clip's audio positions."""

    embeddings: NDArray[np.float32]  # (audio_soft_tokens_per_image, hidden)
    from_tower: NDArray[np.bool_]  # rows the audio tower made; the others hold padding_embedding
    padding_embedding: NDArray[np.float32]  # (hidden,) embed_audio of the audio vocabulary's last id


class StreamedRunner:
    """The reference, fp32, eval mode, no grad, CPU: one decoder layer resident at a time."""

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike[str],
        *,
        n_threads: int | None = None,
        group_bytes: int = DEFAULT_GROUP_BYTES,
        vocab_chunk_bytes: int = VOCAB_CHUNK_BYTES,
        on_layer_loaded: LayerCallback | None = None,
        with_vision_tower: bool = False,
        with_audio_tower: bool = False,
    ) -> None:
        if n_threads is not None:
            torch.set_num_threads(n_threads)
        self._weights = CheckpointWeights(checkpoint_dir)
        self._group_bytes = group_bytes
        self._vocab_chunk_bytes = vocab_chunk_bytes
        self._model = build_streamed_model(self._weights, on_layer_loaded, with_vision_tower=with_vision_tower,
                                           with_audio_tower=with_audio_tower)

    @property
    def n_vocab(self) -> int:
        return int(self._weights.text_config.vocab_size)

    @property
    def bos_id(self) -> int | None:
        bos = self._weights.text_config.bos_token_id
        return None if bos is None else int(bos)

    @property
    def settings(self) -> dict[str, Any]:
        # the same function as the in-memory model: a cache written by either serves both
        return transformers_settings()

    def iter_window_logits(
        self,
        token_windows: Sequence[ArrayLike],
        *,
        first_row: int = 0,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[NDArray[np.float32]]:
        """Logits from position ``first_row`` on, one window at a time, in order."""
        done = 0
        for group in self._groups(token_windows, first_row):
            hidden = self.final_hidden_states(group)[:, first_row:]
            for rows in hidden:
                yield self.project(rows)
                done += 1
                if on_progress is not None:
                    on_progress(done, len(token_windows))

    def final_hidden_states(self, windows: NDArray[np.int64], **inputs: Any) -> torch.Tensor:
        """The normed last hidden states (windows, n_ctx, hidden) of a group of equal-length windows;
        ``inputs`` go to the model's forward as well (``pixel_values`` with the vision tower loaded,
        ``input_features`` and ``input_features_mask`` with the audio tower)."""
        with torch.inference_mode():
            output = self._model(input_ids=torch.from_numpy(windows), use_cache=False, **inputs)
        return output.last_hidden_state

    def image_features(self, pixel_values: torch.Tensor) -> NDArray[np.float32]:
        """transformers' ``get_image_features``: the vision tower and ``embed_vision``, nothing else."""
        with torch.inference_mode():
            return self._model.get_image_features(pixel_values).pooler_output[0].numpy()

    def audio_features(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> AudioSoftTokens:
        """transformers' ``get_audio_features`` (the audio tower and ``embed_audio``) for one clip,
        padded as ``Gemma3nModel.forward`` pads it to ``audio_soft_tokens_per_image`` rows: the text
        model's input at the clip's positions. The arguments are the feature extractor's, for a batch
        of one (``input_features_mask`` True at valid frames, as the forward takes it)."""
        model = self._model
        n_soft = int(model.config.audio_soft_tokens_per_image)
        with torch.inference_mode():
            out = model.get_audio_features(input_features, ~input_features_mask)
            from_tower = ~out.audio_mel_mask[0]
            if len(from_tower) > n_soft:
                raise ValidationError(f"the clip gives {len(from_tower)} audio tokens, the text model takes {n_soft}: "
                                      "cut it to 30 s as the feature extractor does")
            padding = self.audio_padding_embedding()
            rows = torch.where(from_tower[:, None], out.pooler_output[0], torch.from_numpy(padding))
        embeddings = np.concatenate([rows.numpy(), np.tile(padding, (n_soft - len(rows), 1))])
        return AudioSoftTokens(embeddings, np.pad(from_tower.numpy(), (0, n_soft - len(rows))), padding)

    def audio_padding_embedding(self) -> NDArray[np.float32]:
        """``embed_audio`` of the audio vocabulary's last id: the rows after a clip's own tokens."""
        last_id = torch.tensor([[self._model.vocab_size - 1]])
        with torch.inference_mode():
            return self._model.embed_audio(input_ids=last_id)[0, 0].numpy()

    def groups(self, token_windows: Sequence[ArrayLike]) -> Iterator[NDArray[np.int64]]:
        """The windows as (group size, n_ctx) id arrays, each group within the activation budget."""
        return self._groups(token_windows, 0)

    def _groups(self, token_windows: Sequence[ArrayLike], first_row: int) -> Iterator[NDArray[np.int64]]:
        ids = [np.asarray(window).astype(np.int64, copy=False).reshape(-1) for window in token_windows]
        if ids and len({len(window) for window in ids}) > 1:
            raise ValidationError("the streamed reference needs windows of one length (llama-perplexity's protocol)")
        if ids and not 0 <= first_row < len(ids[0]):
            raise ValidationError(f"first_row {first_row} outside a window of {len(ids[0])} tokens")
        size = self.group_size(len(ids[0])) if ids else 1
        for start in range(0, len(ids), size):
            yield np.stack(ids[start : start + size])

    def group_size(self, n_ctx: int) -> int:
        """How many windows of ``n_ctx`` tokens fit the activation budget together (at least one)."""
        return max(1, self._group_bytes // window_activation_bytes(self._weights.text_config, n_ctx))

    def project(self, hidden_rows: torch.Tensor) -> NDArray[np.float32]:
        """The LM head and final soft-cap of ``Gemma3nForConditionalGeneration``, one vocabulary chunk at a time."""
        softcap = self._weights.text_config.final_logit_softcapping
        logits = np.empty((hidden_rows.shape[0], self.n_vocab), dtype=np.float32)
        with torch.inference_mode():
            for start, chunk in self._weights.iter_vocab_chunks(self._weights.lm_head_name, self._vocab_chunk_bytes):
                block = torch.nn.functional.linear(hidden_rows, torch.from_numpy(chunk))
                if softcap is not None:
                    block = torch.tanh(block / softcap) * softcap
                logits[:, start : start + block.shape[1]] = block.numpy()
        return logits


def window_activation_bytes(text_config: Any, n_ctx: int) -> int:
    """float32 bytes one window holds during a layer: AltUp streams, per-layer inputs, FFN and attention scores."""
    altup = text_config.altup_num_inputs * text_config.hidden_size
    per_layer_inputs = text_config.num_hidden_layers * text_config.hidden_size_per_layer_input
    ffn = 3 * max(text_config.intermediate_size)  # gate, up and their product
    attention = 3 * text_config.num_attention_heads * n_ctx  # scores, probabilities, mask
    return 4 * n_ctx * (altup + per_layer_inputs + ffn + attention)
