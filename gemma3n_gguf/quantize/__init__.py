"""The k-quant engine: llama-quantize's schemes and type rules, ggml's kernels, imatrix files.

* :mod:`.schemes` — the presets (name -> llama_ftype, default type).
* :mod:`.rules` / :mod:`.plan` — which type each tensor gets (``plan_types``), from names and shapes.
* :mod:`.ggml` — ``quantize_rows``: ggml's own kernels through ctypes, on a thread pool.
* :mod:`.imatrix` — read, normalize, match and write importance matrices.
"""

from __future__ import annotations

from .ggml import quantize_rows
from .plan import PlanOptions, TensorChoice, TensorInfo, plan_types
from .schemes import SCHEMES, Scheme, get_scheme

__all__ = ["SCHEMES", "PlanOptions", "Scheme", "TensorChoice", "TensorInfo", "get_scheme",
           "plan_types", "quantize_rows"]
