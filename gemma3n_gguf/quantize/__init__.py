"""The k-quant engine: llama-quantize's schemes and type rules, ggml's kernels, imatrix files.

* :mod:`.schemes` — the presets (name -> llama_ftype, default type).
* :mod:`.rules` / :mod:`.plan` — which type each tensor gets (``plan_types``), from names and shapes.
* :mod:`.ggml` — ``quantize_rows``: ggml's own kernels through ctypes, on a thread pool.
* :mod:`.imatrix` — read, normalize, match and write importance matrices.
* :mod:`.onepass` — ``quantize``: checkpoint or GGUF in, quantized GGUF out, byte-identical to
  llama-quantize; ``plan_quantization`` for ``--dry-run``.
* :mod:`.calibrate` — ``compute_imatrix`` from the transformers reference model.
* :mod:`.recipes` — named recipes in TOML.
"""

from __future__ import annotations

from typing import Any

from .ggml import quantize_rows
from .plan import PlanOptions, TensorChoice, TensorInfo, plan_types
from .schemes import SCHEMES, Scheme, get_scheme

__all__ = ["SCHEMES", "PlanOptions", "QuantizeResult", "QuantizationPlan", "Scheme", "TensorChoice",
           "TensorInfo", "get_scheme", "plan_quantization", "plan_types", "quantize", "quantize_rows"]

_ONEPASS = {"quantize", "plan_quantization", "QuantizeResult"}


def __getattr__(name: str) -> Any:
    # the one-pass entry points pull in the converter: load them on first use only
    if name in _ONEPASS:
        from . import onepass

        return getattr(onepass, name)
    if name == "QuantizationPlan":
        from .fileplan import QuantizationPlan

        return QuantizationPlan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
