"""GGUF metadata of the text model: ``general.*`` and every ``gemma3n.*`` key."""

from __future__ import annotations

import math
import re
from pathlib import Path

from gguf import GGUFWriter, LlamaFileType

from gemma3n_gguf.core.version import __version__
from gemma3n_gguf.model.config import TextConfig

FILE_TYPES = {"f32": LlamaFileType.ALL_F32, "f16": LlamaFileType.MOSTLY_F16,
              "bf16": LlamaFileType.MOSTLY_BF16, "q8_0": LlamaFileType.MOSTLY_Q8_0}
QUANTIZATION_VERSION = 2


def sparsity_scale(p: float) -> float:
    """Standard normal quantile of ``p``; -inf for 0, exactly as llama.cpp's converter writes."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def size_label(cfg: TextConfig, n_params: int) -> str:
    """E2B/E4B for the official shapes (the community's labels), else a parameter count."""
    if cfg.hidden_size == 2048 and cfg.num_layers in (30, 35) and cfg.vocab_size == 262400:
        return "E2B" if cfg.num_layers == 30 else "E4B"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n_params >= scale:
            return f"{n_params / scale:.{0 if n_params >= 10 * scale else 1}f}{unit}"
    return str(n_params)


def model_name(checkpoint_dir: Path, config: dict) -> str:
    hub_id = config.get("_name_or_path") or ""
    base = hub_id.rstrip("/").split("/")[-1] if re.fullmatch(r"[\w.-]+/[\w.-]+", hub_id) else checkpoint_dir.resolve().name
    return base or "gemma-3n"


def add_text_metadata(w: GGUFWriter, cfg: TextConfig, *, name: str, outtype: str, n_params: int,
                      hub_id: str | None) -> None:
    w.add_type("model")
    w.add_name(name)
    w.add_size_label(size_label(cfg, n_params))
    w.add_file_type(FILE_TYPES[outtype])
    w.add_quantization_version(QUANTIZATION_VERSION)
    if hub_id:
        w.add_source_repo_url(f"https://huggingface.co/{hub_id}")
    w.add_string("general.converter", f"gemma3n-gguf {__version__}")

    w.add_block_count(cfg.num_layers)
    w.add_context_length(cfg.context_length)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(list(cfg.intermediate_sizes))
    w.add_head_count(cfg.num_heads)
    w.add_head_count_kv(cfg.num_kv_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_sliding_window(cfg.sliding_window)
    w.add_sliding_window_pattern(list(cfg.sliding))
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_rope_freq_base_swa(cfg.rope_theta_swa)
    w.add_final_logit_softcapping(cfg.final_logit_softcapping)
    # written for other runtimes and readers; this llama.cpp hard-codes them (see config.py)
    w.add_altup_active_idx(cfg.altup_active_idx)
    w.add_altup_num_inputs(cfg.altup_num_inputs)
    w.add_embedding_length_per_layer_input(cfg.ple_dim)
    w.add_shared_kv_layers(cfg.num_kv_shared_layers)
    w.add_activation_sparsity_scale([sparsity_scale(p) for p in cfg.activation_sparsity])
