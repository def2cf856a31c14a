"""Compute an importance matrix from the transformers reference model, as llama-imatrix does.

For every matrix multiplication llama.cpp runs with a ``blk.*`` weight, llama-imatrix adds up
the squares of the input activations per input column and counts the input rows. Here the
same sums come from forward hooks on the matching ``nn.Linear`` modules of transformers' Gemma 3n,
mapped to GGUF names, on the same token windows (llama-perplexity's protocol: the text tokenized
once with BOS and special-token text left as text, cut into ``n_ctx`` windows whose first token
is overwritten by BOS).

Gemma 3n's KV-shared layers (from layer 20, hard-coded in llama.cpp) never compute K and V in
llama.cpp, so llama-imatrix records nothing for their ``attn_k``/``attn_v``; neither do we, and
llama-quantize then quantizes those tensors without importance data. ``token_embd`` and
``per_layer_token_embd`` are row lookups, and the other global matrices are not ``blk.*``:
they get no entries either.

With ``reference_mode="streamed"`` (or ``"auto"`` on a model that does not fit in memory) the
sums are accumulated layer by layer on the layer-streamed reference
(:mod:`gemma3n_gguf.reference.streamed`): each decoder layer gets the same hooks when it is
loaded, and the windows go through it in groups.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.model.names import TEXT_PREFIX, TensorKind, classify, gguf_name
from gemma3n_gguf.model.text_gguf import load_checked_config
from gemma3n_gguf.core.errors import CheckpointError, QuantizationError
from gemma3n_gguf.core.llama_facts import KV_SHARED_FROM
from gemma3n_gguf.core.memory import measure_peak_rss
from gemma3n_gguf.reference.mode import AUTO, STREAMED, resolve_reference_mode
from gemma3n_gguf.reference.runners import import_transformers, load_reference_model
from gemma3n_gguf.reference.windows import plan_windows
from gemma3n_gguf.quantize.imatrix import Imatrix, ImatrixEntry

MIN_ROWS = 16  # llama-imatrix ignores matrix multiplications over fewer rows
# a text-model decoder layer: model.language_model.layers.N (or model.layers.N for Gemma3nForCausalLM)
_LAYER_MODULE = re.compile(r"^model\.(?:language_model\.)?layers\.(\d+)$")

ImatrixProgress = Callable[[int, int], None]  # (windows done, windows total)


@dataclass
class ImatrixResult:
    imatrix: Imatrix
    n_tokens: int  # tokens of the text
    n_windows: int  # windows evaluated (llama-imatrix's chunks)
    shared_kv_skipped: list[str] = field(default_factory=list)  # K/V of KV-shared layers: no entries
    warnings: list[str] = field(default_factory=list)
    reference_mode: str = "memory"  # how the reference ran: "memory" or "streamed"
    peak_rss_bytes: int = 0  # of the reference pass


class _Accumulator:
    """Sums of squared inputs per column, and the rows counted, for one weight."""

    def __init__(self, n_columns: int):
        self.sums = np.zeros(n_columns, dtype=np.float64)
        self.rows = 0

    def hook(self, module: Any, args: tuple) -> None:
        x = args[0].detach()
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] < MIN_ROWS:
            return
        self.sums += (rows.double() ** 2).sum(dim=0).numpy()
        self.rows += rows.shape[0]


def compute_imatrix(
    checkpoint_dir: str | os.PathLike[str],
    text: str,
    *,
    dataset: str,
    n_ctx: int = 512,
    chunks: int | None = None,
    force: bool = False,
    on_progress: ImatrixProgress | None = None,
    reference_mode: str = AUTO,
) -> ImatrixResult:
    """The importance matrix of ``text`` through the checkpoint's transformers model.

    ``dataset`` names the text in the file (llama-imatrix writes the ``-f`` path there);
    ``chunks`` caps the number of ``n_ctx``-token windows (None: all); ``reference_mode`` is
    ``auto``, ``memory`` or ``streamed`` (see :mod:`gemma3n_gguf.reference.mode`).
    """
    if n_ctx < MIN_ROWS:
        raise QuantizationError(f"--ctx {n_ctx} is too small: llama.cpp ignores batches under {MIN_ROWS} tokens")
    ckpt = Checkpoint(checkpoint_dir)
    config, warnings = load_checked_config(ckpt, force)
    mode = resolve_reference_mode(reference_mode, ckpt.directory).mode
    _, transformers = import_transformers()
    ids, bos_id = _tokenize(transformers, ckpt.directory, text)
    windows = plan_windows(ids, n_ctx, bos_id=bos_id, chunks=chunks).evaluated_windows()
    accumulators: dict[str, _Accumulator] = {}
    accumulate = _streamed_sums if mode == STREAMED else _in_memory_sums
    with measure_peak_rss() as peak:
        accumulate(ckpt.directory, windows, accumulators, on_progress)
    entries = {name: ImatrixEntry(acc.sums.astype(np.float32)[None, :], np.array([acc.rows], dtype=np.int64))
               for name, acc in sorted(accumulators.items()) if acc.rows > 0}
    # llama-imatrix's chunk count: the most rows any weight saw, in windows (Gemma 3n's AltUp router
    # runs twice per layer, so this is twice the windows, as llama-imatrix writes it)
    chunk_count = max((int(e.counts[0]) // n_ctx for e in entries.values()), default=0)
    imatrix = Imatrix(entries, datasets=[dataset], chunk_count=chunk_count, chunk_size=n_ctx)
    skipped = [gguf_name(kind, bid) for bid in range(KV_SHARED_FROM, config.num_layers)
               for kind in (TensorKind.ATTN_K, TensorKind.ATTN_V)]
    return ImatrixResult(imatrix, len(ids), len(windows), skipped, warnings, mode, peak.peak_rss_bytes)


def _in_memory_sums(directory: Path, windows: list[np.ndarray], accumulators: dict[str, _Accumulator],
                    on_progress: ImatrixProgress | None) -> None:
    """The whole model loaded, one window at a time."""
    import torch

    model = load_reference_model(directory)
    for name, module in model.named_modules():
        if match := _LAYER_MODULE.match(name):
            _attach_layer(int(match.group(1)), module, accumulators)
    for done, window in enumerate(windows, start=1):
        input_ids = torch.from_numpy(np.asarray(window, dtype=np.int64))[None, :]
        with torch.inference_mode():
            model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
        if on_progress is not None:
            on_progress(done, len(windows))


def _streamed_sums(directory: Path, windows: list[np.ndarray], accumulators: dict[str, _Accumulator],
                   on_progress: ImatrixProgress | None) -> None:
    """One decoder layer at a time, hooked as it is loaded; the windows through it in groups."""
    from gemma3n_gguf.reference.streamed import StreamedRunner

    runner = StreamedRunner(directory, on_layer_loaded=lambda bid, layer: _attach_layer(bid, layer, accumulators))
    done = 0
    for group in runner.groups(windows):
        runner.final_hidden_states(group)
        done += len(group)
        if on_progress is not None:
            on_progress(done, len(windows))


def read_calibration_text(path: str | os.PathLike[str]) -> str:
    """A calibration text file, as UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise QuantizationError(f"cannot read the calibration text {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise QuantizationError(f"{path} is not UTF-8 text: {exc}") from exc


def _tokenize(transformers: Any, directory: Path, text: str) -> tuple[list[int], int | None]:
    """llama.cpp's tokenization of a calibration text: BOS added, special-token text kept as text."""
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"transformers cannot load the tokenizer of {directory}: {exc}") from exc
    ids = tokenizer(text, add_special_tokens=True, split_special_tokens=True)["input_ids"]
    adds_bos = bool(getattr(tokenizer, "add_bos_token", True)) and tokenizer.bos_token_id is not None
    return list(ids), tokenizer.bos_token_id if adds_bos else None


def _attach_layer(bid: int, layer: Any, accumulators: dict[str, _Accumulator]) -> None:
    """Hooks on every Linear of decoder layer ``bid`` llama.cpp multiplies with (not the K/V it never runs)."""
    import torch

    for path, module in layer.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        mapped = classify(f"{TEXT_PREFIX}layers.{bid}.{path}.weight")
        if mapped is None:
            raise QuantizationError(f"no GGUF name for the text-model layer layers.{bid}.{path}")
        kind, _, _ = mapped
        if bid >= KV_SHARED_FROM and kind in (TensorKind.ATTN_K, TensorKind.ATTN_V):
            continue  # present in older transformers, never run by llama.cpp
        accumulator = accumulators.setdefault(gguf_name(kind, bid), _Accumulator(module.in_features))
        module.register_forward_pre_hook(accumulator.hook)
