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
from gemma3n_gguf.model.config import LLAMA_CPP_KV_FROM_START
from gemma3n_gguf.model.names import TEXT_PREFIX, TensorKind, classify, gguf_name
from gemma3n_gguf.model.text_gguf import load_checked_config
from gemma3n_gguf.core.errors import CheckpointError, QuantizationError
from gemma3n_gguf.reference.runners import import_transformers, load_reference_model
from gemma3n_gguf.reference.windows import plan_windows
from gemma3n_gguf.quantize.imatrix import Imatrix, ImatrixEntry

MIN_ROWS = 16  # llama-imatrix ignores matrix multiplications over fewer rows
# a text-model Linear: model.language_model.layers.N.<path> (or model.layers.N.<path> for Gemma3nForCausalLM)
_LAYER_MODULE = re.compile(r"^model\.(?:language_model\.)?(layers\.(\d+)\..+)$")

ImatrixProgress = Callable[[int, int], None]  # (windows done, windows total)


@dataclass
class ImatrixResult:
    imatrix: Imatrix
    n_tokens: int  # tokens of the text
    n_windows: int  # windows evaluated (llama-imatrix's chunks)
    shared_kv_skipped: list[str] = field(default_factory=list)  # K/V of KV-shared layers: no entries
    warnings: list[str] = field(default_factory=list)


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
) -> ImatrixResult:
    """The importance matrix of ``text`` through the checkpoint's transformers model.

    ``dataset`` names the text in the file (llama-imatrix writes the ``-f`` path there);
    ``chunks`` caps the number of ``n_ctx``-token windows (None: all).
    """
    if n_ctx < MIN_ROWS:
        raise QuantizationError(f"--ctx {n_ctx} is too small: llama.cpp ignores batches under {MIN_ROWS} tokens")
    ckpt = Checkpoint(checkpoint_dir)
    _, warnings = load_checked_config(ckpt, force)
    torch, transformers = import_transformers()
    ids, bos_id = _tokenize(transformers, ckpt.directory, text)
    windows = plan_windows(ids, n_ctx, bos_id=bos_id, chunks=chunks)
    model = load_reference_model(ckpt.directory)
    accumulators, skipped = _attach(model)
    total = len(windows)
    for done, window in enumerate(windows.evaluated_windows(), start=1):
        input_ids = torch.from_numpy(np.asarray(window, dtype=np.int64))[None, :]
        with torch.inference_mode():
            model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
        if on_progress is not None:
            on_progress(done, total)
    entries = {name: ImatrixEntry(acc.sums.astype(np.float32)[None, :], np.array([acc.rows], dtype=np.int64))
               for name, acc in sorted(accumulators.items()) if acc.rows > 0}
    # llama-imatrix's chunk count: the most rows any weight saw, in windows (Gemma 3n's AltUp router
    # runs twice per layer, so this is twice the windows, as llama-imatrix writes it)
    chunk_count = max((int(e.counts[0]) // n_ctx for e in entries.values()), default=0)
    imatrix = Imatrix(entries, datasets=[dataset], chunk_count=chunk_count, chunk_size=n_ctx)
    return ImatrixResult(imatrix, len(ids), total, skipped, warnings)


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


def _attach(model: Any) -> tuple[dict[str, _Accumulator], list[str]]:
    """Hooks on every text-model Linear llama.cpp multiplies with; and the K/V it never runs."""
    import torch

    accumulators: dict[str, _Accumulator] = {}
    for module_name, module in model.named_modules():
        match = _LAYER_MODULE.match(module_name)
        if not match or not isinstance(module, torch.nn.Linear):
            continue
        mapped = classify(TEXT_PREFIX + match.group(1) + ".weight")
        if mapped is None:
            raise QuantizationError(f"no GGUF name for the text-model layer {module_name}")
        kind, bid, _ = mapped
        if bid is not None and bid >= LLAMA_CPP_KV_FROM_START and kind in (TensorKind.ATTN_K, TensorKind.ATTN_V):
            continue  # present in older transformers, never run by llama.cpp
        accumulator = _Accumulator(module.in_features)
        module.register_forward_pre_hook(accumulator.hook)
        accumulators[gguf_name(kind, bid)] = accumulator
    n_layers = 1 + max((int(_LAYER_MODULE.match(n).group(2)) for n, _ in model.named_modules()
                        if _LAYER_MODULE.match(n)), default=-1)
    skipped = [gguf_name(kind, bid) for bid in range(LLAMA_CPP_KV_FROM_START, n_layers)
               for kind in (TensorKind.ATTN_K, TensorKind.ATTN_V)]
    return accumulators, skipped
