"""gemma3n-gguf: convert, quantize and validate Gemma 3n checkpoints as GGUF files."""

__version__ = "0.1.0"
