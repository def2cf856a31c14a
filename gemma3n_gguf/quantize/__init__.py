"""Quantize: llama-quantize's output from a checkpoint in one pass, or from a GGUF.

* :mod:`.onepass` — ``quantize`` and ``plan_quantization`` (``--dry-run``), over the one write
  path of :mod:`gemma3n_gguf.engine` (type planner, reader -> kernels -> writer pipeline).
* :mod:`.imatrix` — read, normalise, match and write importance matrices.
* :mod:`.recipes` — named recipes in TOML.
* :mod:`.calibrate` — ``compute_imatrix`` from the transformers reference (needs the
  ``reference`` extra, so it is not imported here).
"""

from __future__ import annotations

from gemma3n_gguf.core.ggml import quantize_rows
from gemma3n_gguf.engine.fileplan import QuantizationPlan
from gemma3n_gguf.engine.planner import PlanOptions, TensorChoice, TensorInfo, plan_types
from gemma3n_gguf.engine.schemes import SCHEMES, Scheme, get_scheme
from gemma3n_gguf.quantize.onepass import QuantizeResult, plan_quantization, quantize

__all__ = ["SCHEMES", "PlanOptions", "QuantizeResult", "QuantizationPlan", "Scheme", "TensorChoice",
           "TensorInfo", "get_scheme", "plan_quantization", "plan_types", "quantize", "quantize_rows"]
