"""Which runtimes can run a Gemma 3n text model, and why not: said from the config alone.

The verdicts follow what llama.cpp hard-codes (:func:`config.llama_cpp_violations`): per-layer FFN
widths that differ fail to load in the stock loader (layer 0's width sizes every layer), while
the repository's loader patch (``runtime/patches/0001-gemma3n-per-layer-ffn.patch``) sizes each
layer from the per-layer array; a KV-sharing boundary other than layer 20 or sparsity on layers
other than 0-9 (what skipping early layers does) computes a different model in both.
Ollama and LM Studio embed llama.cpp; nothing here has run them, so they get no verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gemma3n_gguf.model.config import TextConfig, llama_cpp_violations

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
