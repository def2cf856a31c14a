"""Quantize a Gemma 3n checkpoint (one pass, no intermediate file) or an F32/F16/BF16 GGUF.

The output is byte for byte what ``gemma3n-gguf convert --outtype f32`` (or the chosen
``intermediate`` type) followed by llama-quantize writes: the same type per tensor (:mod:`.plan`), the same kernels (:mod:`.ggml`),
llama.cpp's tensor order, its key-value order (:mod:`.kv`) and 32-byte alignment, and the same
imatrix normalisation and ``quantize.imatrix.*`` keys as llama-quantize's CLI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.core.atomic import refuse_input_as_output
from gemma3n_gguf.core.gguf_write import Progress
from gemma3n_gguf.engine.fileplan import PlannedOutput, QuantizationPlan
from gemma3n_gguf.core.ggml import thread_count
from gemma3n_gguf.quantize.imatrix import Imatrix, assign_imatrix, normalize, quantize_metadata, read_imatrix
from gemma3n_gguf.engine.inputs import ARCH, QuantizeInput, open_input, quantized_sources
from gemma3n_gguf.engine.kv import quantized_kv
from gemma3n_gguf.engine.pipeline import TensorJob, write_through_pipeline
from gemma3n_gguf.engine.planner import (
    PlanOptions,
    TensorChoice,
    TensorInfo,
    check_imatrix_requirement,
    llama_order_key,
    plan_types,
    unmatched_patterns,
)
from gemma3n_gguf.engine.rules import is_kv_shared_kv
from gemma3n_gguf.engine.schemes import Scheme, get_scheme


# a --tensor-type regex for the K/V of llama.cpp's KV-shared layers (20 and up)
_KV_SHARED_PATTERN = r"blk\.([2-9]\d|\d{3,})\.attn_(k|v)"


@dataclass
class QuantizeResult:
    path: Path
    plan: QuantizationPlan
    seconds: float
    threads: int


@dataclass
class _Prepared:
    input: QuantizeInput
    plan: QuantizationPlan
    imatrix_values: dict[str, np.ndarray]


def plan_quantization(
    source: str | os.PathLike[str] | QuantizeInput,
    *,
    scheme: str | Scheme = "Q4_K_M",
    options: PlanOptions = PlanOptions(),
    imatrix: str | os.PathLike[str] | None = None,
    allow_requantize: bool = False,
    intermediate: str = "f32",
    force: bool = False,
    exact_mm_tokens: bool = False,
) -> QuantizationPlan:
    """The output file ``quantize`` would write, from headers only (``--dry-run``)."""
    return _prepare(source, scheme, options, imatrix, allow_requantize,
                    dict(intermediate=intermediate, force=force, exact_mm_tokens=exact_mm_tokens)).plan


def quantize(
    source: str | os.PathLike[str] | QuantizeInput,
    output: str | os.PathLike[str] | None = None,
    *,
    scheme: str | Scheme = "Q4_K_M",
    options: PlanOptions = PlanOptions(),
    imatrix: str | os.PathLike[str] | None = None,
    allow_requantize: bool = False,
    threads: int | None = None,
    on_progress: Progress | None = None,
    intermediate: str = "f32",
    force: bool = False,
    exact_mm_tokens: bool = False,
) -> QuantizeResult:
    """Write ``source`` quantized with ``scheme`` to ``output``.

    ``source`` is a checkpoint directory (read once, row by row: no intermediate file) or a
    GGUF file. A GGUF whose tensors are already quantized is refused unless
    ``allow_requantize``. ``imatrix`` is a llama.cpp imatrix file (GGUF or legacy ``.dat``).
    ``on_progress(bytes_written, bytes_total, tensor)`` follows the output.

    For a checkpoint, the output equals ``convert --outtype <intermediate>`` followed by
    llama-quantize: ``intermediate`` ("f32", "f16" or "bf16") is the type in which the tensors
    llama-quantize never quantizes (norms aside) are kept, and the values the others are
    quantized from. ``force`` and ``exact_mm_tokens`` mean what they mean to ``convert``.
    Nothing appears at ``output`` unless the whole file is complete.
    """
    prepared = _prepare(source, scheme, options, imatrix, allow_requantize,
                        dict(intermediate=intermediate, force=force, exact_mm_tokens=exact_mm_tokens))
    plan, src = prepared.plan, prepared.input
    dest = Path(output) if output is not None else src.default_output(plan.scheme.name)
    _check_destination(dest, [src.label] + ([imatrix] if imatrix is not None else []))
    n_threads = thread_count(threads)
    jobs = [TensorJob(t.name, t.written_shape, t.qtype, t.converted, prepared.imatrix_values.get(t.name))
            for t in plan.tensors]
    started = time.perf_counter()
    write_through_pipeline(dest, ARCH, plan.kv, src, jobs, n_threads, on_progress)
    return QuantizeResult(dest, plan, time.perf_counter() - started, n_threads)


def _prepare(source, scheme, options: PlanOptions, imatrix_path, allow_requantize: bool,
             input_options: dict) -> _Prepared:
    scheme = get_scheme(scheme)
    imatrix = _load_imatrix(imatrix_path)
    options = replace(options, has_imatrix=imatrix is not None)
    # an input opened by the caller (a MatFormer slice: slice/gguf.py) is taken as it is
    src = open_input(source, **input_options) if isinstance(source, (str, os.PathLike)) else source
    tensors = src.tensors
    choices = plan_types(tensors, scheme, options)
    _check_requantize(src, tensors, choices, allow_requantize)
    values, missing, extra_kv = {}, [], []
    if imatrix is not None:
        normalized = normalize(imatrix)
        converted = [c.name for t, c in zip(tensors, choices) if c.qtype != t.source_type]
        assignment = assign_imatrix(normalized, tensors, converted)
        values, missing = assignment.values, assignment.missing
        extra_kv = quantize_metadata(imatrix, str(imatrix_path), len(normalized))
    _check_imatrix_needs(choices, set(values) if imatrix is not None else None)
    outputs = [PlannedOutput(t.name, t.shape, t.source_type, c.qtype, c.reason, t.name in values)
               for t, c in zip(tensors, choices)]
    outputs.sort(key=lambda t: llama_order_key(t.name))
    plan = QuantizationPlan(
        source=src.label, scheme=scheme, tensors=outputs,
        kv=quantized_kv(src.kv(), scheme.ftype, extra_kv),
        imatrix_file=None if imatrix_path is None else str(imatrix_path),
        imatrix_missing=sorted(missing, key=llama_order_key),
        unmatched_patterns=unmatched_patterns(tensors, options),
        warnings=list(src.warnings),
    )
    return _Prepared(src, plan, values)


def _load_imatrix(path: str | os.PathLike[str] | None) -> Imatrix | None:
    if path is None:
        return None
    return read_imatrix(path)


def _check_imatrix_needs(choices: Sequence[TensorChoice], have: set[str] | None) -> None:
    try:
        check_imatrix_requirement(choices, have)
    except QuantizationError as exc:
        shared = [c.name for c in choices if c.requires_imatrix and is_kv_shared_kv(c.name)]
        if have is None or not shared:
            raise
        raise QuantizationError(
            f"{exc}. No imatrix has data for {shared[0]}: llama.cpp never computes the K/V of Gemma 3n's "
            "KV-shared layers (llama-quantize fails the same way). Give them a type that needs none, e.g. "
            f"--tensor-type '{_KV_SHARED_PATTERN}=q4_k'") from None


def _check_requantize(src: QuantizeInput, tensors: Sequence[TensorInfo], choices: Sequence[TensorChoice],
                      allow_requantize: bool) -> None:
    by_name = {c.name: c for c in choices}
    already = quantized_sources(list(tensors), lambda t: by_name[t.name].qtype != t.source_type)
    if already and not allow_requantize:
        types = ", ".join(sorted({t.source_type.name for t in already}))
        raise QuantizationError(
            f"{src.label} is already quantized ({types} tensors such as {already[0].name}); requantizing "
            "compounds the rounding errors: quantize the checkpoint or an F32/F16/BF16 GGUF instead, "
            "or pass --allow-requantize to do it anyway")


def _check_destination(dest: Path, inputs: Sequence[str | os.PathLike[str]]) -> None:
    refuse_input_as_output(dest, inputs, QuantizationError)
    if dest.is_dir():
        raise QuantizationError(f"the output {dest} is a directory; give a file name such as {dest / 'model.gguf'}")
