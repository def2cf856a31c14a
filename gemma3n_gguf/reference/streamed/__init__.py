"""The layer-streamed fp32 reference: transformers' Gemma 3n with one decoder layer resident at a time."""

from gemma3n_gguf.reference.streamed.runner import AudioSoftTokens, StreamedRunner, window_activation_bytes

__all__ = ["AudioSoftTokens", "StreamedRunner", "window_activation_bytes"]
