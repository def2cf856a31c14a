"""Encoding float32 rows into GGUF tensor types, with the numeric guards a converter needs."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType

from gemma3n_gguf.core.errors import ConversionError

Q = GGMLQuantizationType


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest even, as ggml does), as raw uint16 words."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))
    return (rounded >> 16).astype(np.uint16)


def bf16_words_finite(words: np.ndarray) -> bool:
    """No NaN or infinity among bfloat16 words (exponent bits all ones)."""
    return words.size == 0 or int((words & 0x7FFF).max()) < 0x7F80


def encode_rows(rows: np.ndarray, qtype: GGMLQuantizationType, tensor: str) -> np.ndarray:
    """float32 rows -> bytes of ``qtype``; non-finite values are refused, not written."""
    if not np.all(np.isfinite(rows)):
        raise ConversionError(
            f"tensor {tensor} contains NaN or infinite values; the checkpoint is corrupt "
            "(re-download it, or check the fine-tuning run that produced it)"
        )
    if qtype == Q.F32:
        return rows.astype("<f4", copy=False)
    if qtype == Q.F16:
        encoded = rows.astype("<f2")
        if not np.all(np.isfinite(encoded)):
            raise ConversionError(f"tensor {tensor} has values beyond the F16 range; use --outtype bf16 or f32")
        return encoded
    if qtype == Q.BF16:
        return f32_to_bf16(rows)
    from gemma3n_gguf.core.ggml import quantize_rows

    return quantize_rows(rows.reshape(-1, rows.shape[-1]), qtype)
