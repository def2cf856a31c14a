"""Checkpoint -> GGUF conversion: reader, tensor plan, streaming writer."""

from .mmproj import MmprojResult, convert_mmproj, convert_text_and_mmproj
from .text import ConversionResult, convert

__all__ = ["ConversionResult", "MmprojResult", "convert", "convert_mmproj", "convert_text_and_mmproj"]
