"""Encoding float32 rows into GGUF tensor types, with the numeric guards a converter needs."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as GGMLType

from gemma3n_gguf.core.errors import ConversionError
from gemma3n_gguf.core.ggml import fp32_to_bf16, fp32_to_fp16, quantize_rows


def bf16_words_finite(words: np.ndarray) -> bool:
    """No NaN or infinity among bfloat16 words (exponent bits all ones)."""
    return words.size == 0 or int((words & 0x7FFF).max()) < 0x7F80


def encode_rows(rows: np.ndarray, qtype: GGMLType, tensor: str) -> np.ndarray:
    """float32 rows -> bytes of ``qtype`` (ggml's own rounding); non-finite values are refused,
    not written. Runs on the calling thread: the pipeline supplies the parallelism."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if not np.all(np.isfinite(rows)):
        raise ConversionError(
            f"tensor {tensor} contains NaN or infinite values; the checkpoint is corrupt "
            "(re-download it, or check the fine-tuning run that produced it)"
        )
    if qtype == GGMLType.F32:
        return rows
    if qtype == GGMLType.F16:
        encoded = fp32_to_fp16(rows).view("<f2")
        if not np.all(np.isfinite(encoded)):
            raise ConversionError(f"tensor {tensor} has values beyond the F16 range; use --outtype bf16 or f32")
        return encoded
    if qtype == GGMLType.BF16:
        return fp32_to_bf16(rows)
    return quantize_rows(rows.reshape(-1, rows.shape[-1]), qtype, threads=1)
