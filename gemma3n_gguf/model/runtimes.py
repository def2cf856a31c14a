"""Which runtimes can run a Gemma 3n text model, and why not: said from the config alone.

The verdicts follow what llama.cpp hard-codes (:func:`config.llama_cpp_violations`): per-layer FFN
widths that differ fail to load in the stock loader (layer 0's width sizes every layer), while
the repository's loader patch (``runtime/patches/0001-gemma3n-per-layer-ffn.patch``) sizes each
layer from the per-layer array; a KV-sharing boundary other than layer 20 or sparsity on layers
other than 0-9 (what skipping early layers does) computes a different model in both.
Ollama and LM Studio embed llama.cpp; nothing here has run them, so they get no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.model.config import LLAMA_CPP_LAUREL_RANK, TextConfig, llama_cpp_violations

LLAMA_CPP = "llama.cpp"
LLAMA_CPP_PATCHED = "llama.cpp+ffn-patch"
RUNTIME_LABELS = {
    LLAMA_CPP: "llama.cpp (llama-cpp-python 0.3.36, stock)",
    LLAMA_CPP_PATCHED: "llama.cpp with runtime/patches/0001-gemma3n-per-layer-ffn.patch",
}
METADATA_PREFIX = "gemma3n_gguf.runtime."
UNTESTED_NOTE = "Ollama and LM Studio embed llama.cpp: expect the stock verdict (not tested here)"


@dataclass(frozen=True)
class Verdict:
    runtime: str
    runs: bool
    reasons: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """``yes`` or ``no: <every reason>`` (also the GGUF metadata value)."""
        return "yes" if self.runs else "no: " + "; ".join(self.reasons)


def runtime_verdicts(cfg: TextConfig) -> tuple[Verdict, ...]:
    """The stock and the patched llama.cpp's verdicts on ``cfg``."""
    stock = [str(v) for v in llama_cpp_violations(cfg)]
    uniform = replace(cfg, intermediate_sizes=(cfg.intermediate_sizes[0],) * len(cfg.intermediate_sizes))
    patched = [str(v) for v in llama_cpp_violations(uniform)]
    return (Verdict(LLAMA_CPP, not stock, tuple(stock)), Verdict(LLAMA_CPP_PATCHED, not patched, tuple(patched)))


def verdict_metadata(verdicts: tuple[Verdict, ...]) -> list[tuple[str, str]]:
    """GGUF key-values carrying the verdicts: ``gemma3n_gguf.runtime.<runtime>`` = ``yes`` / ``no: ...``."""
    return [(METADATA_PREFIX + v.runtime, v.text) for v in verdicts]


def verdicts_from_gguf(kv: Mapping[str, Any], laurel_rank: int = LLAMA_CPP_LAUREL_RANK) -> tuple[Verdict, ...]:
    """The verdicts on a gemma3n text GGUF, from its ``gemma3n.*`` key-values (decoded values)."""
    return runtime_verdicts(text_config_from_gguf(kv, laurel_rank))


def text_config_from_gguf(kv: Mapping[str, Any], laurel_rank: int) -> TextConfig:
    """The config fields llama.cpp's verdict depends on, read back from a text GGUF's metadata
    (``laurel_rank`` is no key: it is the rank of ``blk.0.laurel_l``)."""
    missing = object()

    def get(key: str, default: Any = missing) -> Any:
        value = kv.get("gemma3n." + key, default)
        if value is missing or value is None:
            raise ConfigError(f"gemma3n.{key} is missing: llama.cpp's gemma3n loader requires it")
        return value

    try:
        return _text_config(get, laurel_rank)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"a gemma3n.* key has a value of the wrong type or length ({exc})") from None


def _text_config(get: Callable[..., Any], laurel_rank: int) -> TextConfig:
    n = int(get("block_count"))
    widths = get("feed_forward_length")
    widths = tuple(int(w) for w in widths) if isinstance(widths, list) else (int(widths),) * n
    sliding = get("attention.sliding_window_pattern", [False] * n)
    # llama.cpp's converter writes the normal quantile of each layer's sparsity (-inf for none)
    scales = get("activation_sparsity_scale", [-math.inf] * n)
    sparsity = tuple(0.0 if math.isinf(z) else 0.5 * (1 + math.erf(z / math.sqrt(2))) for z in scales)
    return TextConfig(
        num_layers=n, hidden_size=int(get("embedding_length")), intermediate_sizes=widths,
        num_heads=int(get("attention.head_count")), num_kv_heads=int(get("attention.head_count_kv")),
        head_dim=int(get("attention.key_length")), vocab_size=0, vocab_size_per_layer_input=0,
        ple_dim=int(get("embedding_length_per_layer_input")), laurel_rank=laurel_rank,
        altup_num_inputs=int(get("altup.num_inputs")), altup_active_idx=int(get("altup.active_idx")),
        num_kv_shared_layers=int(get("attention.shared_kv_layers", 0)),
        sliding_window=int(get("attention.sliding_window")),
        layer_types=tuple("sliding_attention" if s else "full_attention" for s in sliding),
        activation_sparsity=sparsity, rope_theta=float(get("rope.freq_base")),
        rope_theta_swa=float(get("rope.freq_base_swa")), rms_norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        final_logit_softcapping=float(get("final_logit_softcapping")), context_length=int(get("context_length")))
