"""Checkpoint -> GGUF conversion: reader, tensor plan, streaming writer."""

from .text import ConversionResult, convert

__all__ = ["ConversionResult", "convert"]
