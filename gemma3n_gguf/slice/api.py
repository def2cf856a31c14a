"""``slice``: cut a Gemma 3n checkpoint to a MatFormer configuration, as a GGUF or a checkpoint.

An output ending in ``.gguf`` is written in one streamed pass by the engine (quantized in the
same pass with ``scheme``); any other output is a Hugging Face checkpoint directory.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.core.gguf_write import Progress
from gemma3n_gguf.engine.planner import PlanOptions
from gemma3n_gguf.engine.schemes import convert_scheme, get_scheme
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.model.runtimes import Verdict
from gemma3n_gguf.model.text_gguf import load_checked_config
from gemma3n_gguf.quantize.onepass import plan_quantization, quantize
from gemma3n_gguf.slice.checkpoint import SlicedCheckpoint
from gemma3n_gguf.slice.gguf import PLE_TABLE, SlicedInput
from gemma3n_gguf.slice.hf import write_hf_slice
from gemma3n_gguf.slice.rules import TEXT, Slice
from gemma3n_gguf.slice.spec import slice_request

HF_PLE_TABLE = TEXT + "embed_tokens_per_layer.weight"


@dataclass(frozen=True)
class WriteOptions:
    """How a GGUF slice is typed: ``scheme`` (a llama-quantize preset) or else ``outtype``."""

    scheme: str | None = None
    outtype: str = "f16"
    plan_options: PlanOptions = PlanOptions()
    imatrix: str | os.PathLike[str] | None = None


@dataclass
class SliceResult:
    """A slice written (or only planned: ``path`` None) and what it costs."""

    slice: Slice
    config: TextConfig  # the slice's
    effective_parameters: int
    file_bytes: int  # the GGUF's data bytes, or the checkpoint's tensor bytes
    resident_bytes: int  # all but the PLE table (which can stay off the accelerator)
    verdicts: tuple[Verdict, ...]
    path: Path | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def open_slice(checkpoint_dir: str | os.PathLike[str], *, config: str | None = None, ffn_widths: str | None = None,
               skip_layers: str | None = None, force: bool = False) -> SlicedCheckpoint:
    """The checkpoint cut as the options say; the original must be one llama.cpp runs (or ``force``)."""
    original = Checkpoint(checkpoint_dir)
    cfg, _ = load_checked_config(original, force)
    return SlicedCheckpoint(original, slice_request(cfg, config=config, ffn_widths=ffn_widths,
                                                    skip_layers=skip_layers))


def is_gguf_output(output: str | os.PathLike[str]) -> bool:
    return str(output).lower().endswith(".gguf")


def plan_slice(sliced: SlicedCheckpoint, gguf: bool, options: WriteOptions = WriteOptions()) -> SliceResult:
    """Sizes and runtime verdicts of the slice as a GGUF (typed by ``options``) or a checkpoint,
    from headers only."""
    src = SlicedInput(sliced, intermediate=_intermediate(options))
    if gguf:
        plan = plan_quantization(src, scheme=_scheme(options), options=options.plan_options, imatrix=options.imatrix)
        total = plan.tensor_bytes
        ple = sum(t.nbytes for t in plan.tensors if t.name == PLE_TABLE)
    else:
        total = sum(ref.nbytes for ref in sliced.tensors.values())
        ple = sliced.ref(HF_PLE_TABLE).nbytes
    return SliceResult(sliced.slice, src.config, src.effective_parameters, total, total - ple, src.verdicts)


def slice_model(checkpoint_dir: str | os.PathLike[str], output: str | os.PathLike[str], *,
                config: str | None = None, ffn_widths: str | None = None, skip_layers: str | None = None,
                options: WriteOptions = WriteOptions(), threads: int | None = None, force: bool = False,
                on_progress: Progress | None = None) -> SliceResult:
    """Write the slice to ``output``: a GGUF if it ends in ``.gguf``, else a checkpoint directory."""
    sliced = open_slice(checkpoint_dir, config=config, ffn_widths=ffn_widths, skip_layers=skip_layers, force=force)
    return write_slice(sliced, output, options, threads=threads, on_progress=on_progress)


def write_slice(sliced: SlicedCheckpoint, output: str | os.PathLike[str], options: WriteOptions = WriteOptions(),
                *, threads: int | None = None, on_progress: Progress | None = None) -> SliceResult:
    gguf = is_gguf_output(output)
    if not gguf and (options.scheme or options.imatrix):
        raise ConfigError("--scheme and --imatrix apply to a GGUF output: end -o with .gguf")
    result = plan_slice(sliced, gguf, options)
    started = time.perf_counter()
    if gguf:
        src = SlicedInput(sliced, intermediate=_intermediate(options))
        src.size_kv = [("tensor_bytes", result.file_bytes), ("resident_tensor_bytes", result.resident_bytes)]
        written = quantize(src, output, scheme=_scheme(options), options=options.plan_options,
                           imatrix=options.imatrix, threads=threads, on_progress=on_progress)
        result.path, result.warnings = written.path, written.plan.warnings
    else:
        result.path = write_hf_slice(sliced, Path(output))
    result.seconds = time.perf_counter() - started
    return result


def _intermediate(options: WriteOptions) -> str:
    """The type the input is seen in: the outtype itself, or f32 values to quantize from."""
    return "f32" if options.scheme else options.outtype


def _scheme(options: WriteOptions):
    return get_scheme(options.scheme) if options.scheme else convert_scheme(options.outtype)
