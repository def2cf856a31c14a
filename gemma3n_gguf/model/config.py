"""Typed view of a Gemma 3n config.json and the checks against what llama.cpp hard-codes."""

from __future__ import annotations

from dataclasses import dataclass

from gemma3n_gguf.core.errors import ConfigError

# What llama.cpp (the vendored tree of llama-cpp-python 0.3.36) assumes without reading it.
LLAMA_CPP_PLE_DIM = 256
LLAMA_CPP_LAUREL_RANK = 64
LLAMA_CPP_ALTUP_INPUTS = 4
LLAMA_CPP_ALTUP_ACTIVE = 0
LLAMA_CPP_SOFTCAP = 30.0
LLAMA_CPP_KV_FROM_START = 20
LLAMA_CPP_SPARSE_LAYERS = 10
LLAMA_CPP_SPARSITY = 0.95


@dataclass(frozen=True)
class TextConfig:
    num_layers: int
    hidden_size: int
    intermediate_sizes: tuple[int, ...]
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    vocab_size_per_layer_input: int
    ple_dim: int
    laurel_rank: int
    altup_num_inputs: int
    altup_active_idx: int
    num_kv_shared_layers: int
    sliding_window: int
    layer_types: tuple[str, ...]
    activation_sparsity: tuple[float, ...]
    rope_theta: float
    rope_theta_swa: float
    rms_norm_eps: float
    final_logit_softcapping: float
    context_length: int

    @property
    def sliding(self) -> tuple[bool, ...]:
        return tuple(t == "sliding_attention" for t in self.layer_types)

    @property
    def first_shared_layer(self) -> int:
        return self.num_layers - self.num_kv_shared_layers

    @classmethod
    def from_hf(cls, config: dict) -> TextConfig:
        """Read the text part of a Gemma 3n config.json (transformers 4.5x or 5.x layout)."""
        model_type = config.get("model_type")
        if model_type == "gemma3n":
            text = config.get("text_config")
            if not isinstance(text, dict):
                raise ConfigError("config.json has model_type gemma3n but no text_config")
        elif model_type == "gemma3n_text":
            text = config
        else:
            archs = ", ".join(config.get("architectures") or []) or "unknown"
            raise ConfigError(
                f"not a Gemma 3n checkpoint: model_type is {model_type!r} (architectures: {archs}); "
                "this tool converts Gemma3nForConditionalGeneration checkpoints"
            )
        return cls._from_text(text)

    @classmethod
    def _from_text(cls, t: dict) -> TextConfig:
        def need(key: str):
            if key not in t:
                raise ConfigError(f"text config lacks {key!r}; the checkpoint's config.json is incomplete")
            return t[key]

        layers = int(need("num_hidden_layers"))
        widths = need("intermediate_size")
        widths = tuple(int(w) for w in widths) if isinstance(widths, list) else (int(widths),) * layers
        sparsity = t.get("activation_sparsity_pattern") or [0.0] * layers
        theta, theta_swa = _rope_bases(t)
        return cls(
            num_layers=layers,
            hidden_size=int(need("hidden_size")),
            intermediate_sizes=widths,
            num_heads=int(need("num_attention_heads")),
            num_kv_heads=int(need("num_key_value_heads")),
            head_dim=int(t.get("head_dim") or need("hidden_size") // need("num_attention_heads")),
            vocab_size=int(need("vocab_size")),
            vocab_size_per_layer_input=int(t.get("vocab_size_per_layer_input", need("vocab_size"))),
            ple_dim=int(need("hidden_size_per_layer_input")),
            laurel_rank=int(need("laurel_rank")),
            altup_num_inputs=int(need("altup_num_inputs")),
            altup_active_idx=int(t.get("altup_active_idx", 0)),
            num_kv_shared_layers=int(t.get("num_kv_shared_layers", 0)),
            sliding_window=int(need("sliding_window")),
            layer_types=tuple(need("layer_types")),
            activation_sparsity=tuple(float(p) for p in sparsity),
            rope_theta=theta,
            rope_theta_swa=theta_swa,
            rms_norm_eps=float(t.get("rms_norm_eps", 1e-6)),
            final_logit_softcapping=float(t.get("final_logit_softcapping") or 0.0),
            context_length=int(t.get("max_position_embeddings", 32768)),
        )


def _rope_bases(t: dict) -> tuple[float, float]:
    """(full, sliding) rope bases from 5.x ``rope_parameters`` or 4.5x ``rope_theta``."""
    params = t.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params:
        return float(params["full_attention"]["rope_theta"]), float(params["sliding_attention"]["rope_theta"])
    if "rope_theta" in t:
        return float(t["rope_theta"]), float(t.get("rope_local_base_freq", 10000.0))
    raise ConfigError("text config has neither rope_parameters nor rope_theta")


@dataclass(frozen=True)
class Violation:
    """A config value llama.cpp cannot honour, and what goes wrong if converted anyway."""

    what: str
    consequence: str

    def __str__(self) -> str:
        return f"{self.what} ({self.consequence})"


def llama_cpp_violations(cfg: TextConfig) -> list[Violation]:
    """Every way ``cfg`` departs from what llama.cpp hard-codes for gemma3n."""
    out: list[Violation] = []

    def check(ok: bool, what: str, consequence: str) -> None:
        if not ok:
            out.append(Violation(what, consequence))

    wrong_math = "llama.cpp would compute a different model"
    check(cfg.ple_dim == LLAMA_CPP_PLE_DIM, f"hidden_size_per_layer_input is {cfg.ple_dim}, llama.cpp uses 256",
          "the model fails to load")
    check(cfg.laurel_rank == LLAMA_CPP_LAUREL_RANK, f"laurel_rank is {cfg.laurel_rank}, llama.cpp uses 64",
          "the model fails to load")
    check(cfg.altup_num_inputs == LLAMA_CPP_ALTUP_INPUTS,
          f"altup_num_inputs is {cfg.altup_num_inputs}, llama.cpp uses 4", "the model fails to load")
    check(cfg.altup_active_idx == LLAMA_CPP_ALTUP_ACTIVE,
          f"altup_active_idx is {cfg.altup_active_idx}, llama.cpp uses 0", wrong_math)
    check(cfg.final_logit_softcapping == LLAMA_CPP_SOFTCAP,
          f"final_logit_softcapping is {cfg.final_logit_softcapping}, llama.cpp uses 30", wrong_math)
    check(len(set(cfg.intermediate_sizes)) == 1,
          f"per-layer FFN widths differ ({_widths(cfg)}); llama.cpp sizes every layer like layer 0",
          "the model fails to load: 'ffn_gate has wrong shape'")
    check(len(cfg.intermediate_sizes) == cfg.num_layers,
          f"intermediate_size has {len(cfg.intermediate_sizes)} entries for {cfg.num_layers} layers",
          "the model fails to load")
    check(len(cfg.layer_types) == cfg.num_layers,
          f"layer_types has {len(cfg.layer_types)} entries for {cfg.num_layers} layers",
          "sliding-window layers would be misplaced")
    check(cfg.vocab_size >= cfg.vocab_size_per_layer_input,
          f"vocab_size {cfg.vocab_size} < vocab_size_per_layer_input {cfg.vocab_size_per_layer_input}",
          "the per-layer embedding table cannot be padded")
    out += _kv_sharing_violations(cfg)
    out += _sparsity_violations(cfg)
    return out


def _widths(cfg: TextConfig) -> str:
    return ", ".join(f"{w}x{cfg.intermediate_sizes.count(w)}" for w in sorted(set(cfg.intermediate_sizes)))


def _kv_sharing_violations(cfg: TextConfig) -> list[Violation]:
    n, shared = cfg.num_layers, cfg.num_kv_shared_layers
    if n <= LLAMA_CPP_KV_FROM_START:
        if shared:
            return [Violation(f"num_kv_shared_layers is {shared} with {n} layers",
                              "llama.cpp shares K/V only from layer 20: these layers would attend to their own K/V")]
        return []
    out = []
    if n - shared != LLAMA_CPP_KV_FROM_START:
        out.append(Violation(
            f"KV sharing starts at layer {n - shared}, llama.cpp hard-codes layer 20",
            "layers would read the wrong KV cache"))
    types = cfg.layer_types
    if len(types) == n and (types[18] != "sliding_attention" or types[19] != "full_attention"):
        out.append(Violation("layer 18 must be sliding and layer 19 full attention",
                             "llama.cpp reuses 18's K/V for sliding and 19's for full layers"))
    return out


def _sparsity_violations(cfg: TextConfig) -> list[Violation]:
    expected = [LLAMA_CPP_SPARSITY if i < LLAMA_CPP_SPARSE_LAYERS else 0.0 for i in range(cfg.num_layers)]
    actual = list(cfg.activation_sparsity) + [0.0] * (cfg.num_layers - len(cfg.activation_sparsity))
    bad = [i for i, (a, e) in enumerate(zip(actual, expected)) if abs(a - e) > 1e-6]
    if not bad:
        return []
    return [Violation(
        f"activation_sparsity_pattern differs at layers {bad[:8]}{'...' if len(bad) > 8 else ''}: "
        "llama.cpp applies 0.95 sparsity to exactly layers 0-9",
        "the FFN of those layers would be computed differently")]
