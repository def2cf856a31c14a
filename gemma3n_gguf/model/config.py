"""Typed view of a Gemma 3n config.json and the checks against what llama.cpp hard-codes."""

from __future__ import annotations

from dataclasses import dataclass

from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.core.llama_facts import KV_SHARED_FROM, SPARSE_LAYERS

# What llama.cpp (the vendored tree of llama-cpp-python 0.3.36) assumes without reading it.
LLAMA_CPP_PLE_DIM = 256
LLAMA_CPP_LAUREL_RANK = 64
LLAMA_CPP_ALTUP_INPUTS = 4
LLAMA_CPP_ALTUP_ACTIVE = 0
LLAMA_CPP_SOFTCAP = 30.0
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
        if not isinstance(config, dict):
            raise ConfigError("config.json does not hold a JSON object")
        model_type = config.get("model_type")
        if model_type == "gemma3n":
            text = config.get("text_config")
            if not isinstance(text, dict):
                raise ConfigError("config.json has model_type gemma3n but no text_config object")
        elif model_type == "gemma3n_text":
            text = config
        else:
            archs = config.get("architectures")
            archs = ", ".join(map(str, archs)) if isinstance(archs, list) and archs else "unknown"
            raise ConfigError(
                f"not a Gemma 3n checkpoint: model_type is {model_type!r} (architectures: {archs}); "
                "this tool converts Gemma3nForConditionalGeneration checkpoints"
            )
        return cls._from_text(_Fields(text))

    @classmethod
    def _from_text(cls, t: _Fields) -> TextConfig:
        layers = t.integer("num_hidden_layers")
        hidden, heads = t.integer("hidden_size"), t.integer("num_attention_heads")
        vocab = t.integer("vocab_size")
        return cls(
            num_layers=layers,
            hidden_size=hidden,
            intermediate_sizes=t.widths("intermediate_size", layers),
            num_heads=heads,
            num_kv_heads=t.integer("num_key_value_heads"),
            head_dim=t.integer("head_dim", default=hidden // heads, nullable=True),
            vocab_size=vocab,
            vocab_size_per_layer_input=t.integer("vocab_size_per_layer_input", default=vocab),
            ple_dim=t.integer("hidden_size_per_layer_input"),
            laurel_rank=t.integer("laurel_rank"),
            altup_num_inputs=t.integer("altup_num_inputs"),
            altup_active_idx=t.integer("altup_active_idx", minimum=0, default=0),
            num_kv_shared_layers=t.integer("num_kv_shared_layers", minimum=0, default=0),
            sliding_window=t.integer("sliding_window"),
            layer_types=t.layer_types(),
            activation_sparsity=t.sparsity(layers),
            rope_theta=t.rope_base("full_attention", "rope_theta", None),
            rope_theta_swa=t.rope_base("sliding_attention", "rope_local_base_freq", 10000.0),
            rms_norm_eps=t.number("rms_norm_eps", default=1e-6),
            final_logit_softcapping=t.number("final_logit_softcapping", default=0.0, nullable=True),
            context_length=t.integer("max_position_embeddings", default=32768),
        )


_REQUIRED = object()
LAYER_TYPES = ("sliding_attention", "full_attention")


class _Fields:
    """The text config's fields, each read with its type and range checked; errors name the field."""

    def __init__(self, text: dict):
        self.text = text

    def _get(self, key: str, default, nullable: bool):
        value = self.text.get(key, default)
        if value is None and nullable:
            value = default
        if value is _REQUIRED:
            raise ConfigError(f"text config lacks {key!r}; the checkpoint's config.json is incomplete")
        return value

    def integer(self, key: str, *, minimum: int = 1, default=_REQUIRED, nullable: bool = False) -> int:
        value = self._get(key, default, nullable)
        if not _is_int(value) or value < minimum:
            raise ConfigError(f"config.json: {key} must be an integer >= {minimum}, not {value!r}")
        return value

    def number(self, key: str, *, minimum: float = 0.0, default=_REQUIRED, nullable: bool = False) -> float:
        value = self._get(key, default, nullable)
        if not _is_number(value) or not minimum <= value < float("inf"):
            raise ConfigError(f"config.json: {key} must be a finite number >= {minimum}, not {value!r}")
        return float(value)

    def widths(self, key: str, layers: int) -> tuple[int, ...]:
        value = self._get(key, _REQUIRED, False)
        if isinstance(value, list) and value and all(_is_int(w) and w >= 1 for w in value):
            return tuple(value)
        if _is_int(value) and value >= 1:
            return (value,) * layers
        raise ConfigError(f"config.json: {key} must be a positive integer or a list of them, not {value!r}")

    def layer_types(self) -> tuple[str, ...]:
        value = self._get("layer_types", _REQUIRED, False)
        if not isinstance(value, list) or not all(v in LAYER_TYPES for v in value):
            raise ConfigError(f"config.json: layer_types must be a list of {' or '.join(LAYER_TYPES)}")
        return tuple(value)

    def sparsity(self, layers: int) -> tuple[float, ...]:
        value = self._get("activation_sparsity_pattern", [0.0] * layers, True)
        if not isinstance(value, list) or not all(_is_number(p) and 0.0 <= p < 1.0 for p in value):
            raise ConfigError("config.json: activation_sparsity_pattern must be a list of numbers in [0, 1)")
        return tuple(float(p) for p in value)

    def rope_base(self, attention: str, legacy_key: str, legacy_default: float | None) -> float:
        """A rope base from 5.x ``rope_parameters`` or 4.5x ``rope_theta`` / ``rope_local_base_freq``."""
        params = self.text.get("rope_parameters")
        if isinstance(params, dict) and "full_attention" in params:
            section = params.get(attention)
            if not isinstance(section, dict):
                raise ConfigError(f"config.json: rope_parameters.{attention} must be an object")
            return _Fields(section).number("rope_theta", minimum=1e-9)
        if "rope_theta" not in self.text:
            raise ConfigError("text config has neither rope_parameters nor rope_theta")
        key = "rope_theta" if attention == "full_attention" else legacy_key
        return self.number(key, minimum=1e-9, default=_REQUIRED if legacy_default is None else legacy_default)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
    if n <= KV_SHARED_FROM:
        if shared:
            return [Violation(f"num_kv_shared_layers is {shared} with {n} layers",
                              "llama.cpp shares K/V only from layer 20: these layers would attend to their own K/V")]
        return []
    out = []
    if n - shared != KV_SHARED_FROM:
        out.append(Violation(
            f"KV sharing starts at layer {n - shared}, llama.cpp hard-codes layer 20",
            "layers would read the wrong KV cache"))
    types = cfg.layer_types
    if len(types) == n and (types[18] != "sliding_attention" or types[19] != "full_attention"):
        out.append(Violation("layer 18 must be sliding and layer 19 full attention",
                             "llama.cpp reuses 18's K/V for sliding and 19's for full layers"))
    return out


def _sparsity_violations(cfg: TextConfig) -> list[Violation]:
    expected = [LLAMA_CPP_SPARSITY if i < SPARSE_LAYERS else 0.0 for i in range(cfg.num_layers)]
    actual = list(cfg.activation_sparsity) + [0.0] * (cfg.num_layers - len(cfg.activation_sparsity))
    bad = [i for i, (a, e) in enumerate(zip(actual, expected)) if abs(a - e) > 1e-6]
    if not bad:
        return []
    return [Violation(
        f"activation_sparsity_pattern differs at layers {bad[:8]}{'...' if len(bad) > 8 else ''}: "
        "llama.cpp applies 0.95 sparsity to exactly layers 0-9",
        "the FFN of those layers would be computed differently")]
