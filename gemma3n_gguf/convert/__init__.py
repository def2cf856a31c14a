"""Convert: a checkpoint's text model to a GGUF (:mod:`.text`) and its vision and audio
towers to a projector GGUF (:mod:`.projector`)."""

from gemma3n_gguf.convert.projector.convert import MmprojResult, convert_mmproj, convert_text_and_mmproj
from gemma3n_gguf.convert.text import ConversionResult, convert

__all__ = ["ConversionResult", "MmprojResult", "convert", "convert_mmproj", "convert_text_and_mmproj"]
