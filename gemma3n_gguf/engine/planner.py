"""The type plan: which ggml type each tensor gets, decided from names and shapes only.

Reproduces ``llama_tensor_get_type`` of llama-quantize for a Gemma 3n file, and, for the
converter's schemes, the rule tables of :mod:`.convert_rules` (the text GGUF) and
:mod:`.projector_rules` (the projector). The one piece
of state is a set of counters: attn_v-like and ffn_down tensors are numbered in llama.cpp's
tensor order (layer number, then name), and a tensor typed by a user override does not
advance them. Everything else is the tables of :mod:`.rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gguf import GGMLQuantizationType as GGMLType

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.engine import rules
from gemma3n_gguf.engine.convert_rules import convert_type
from gemma3n_gguf.engine.projector_rules import Role, projector_type
from gemma3n_gguf.engine.rules import ATTN_V_LIKE, PLE_NAME, Category, LayerContext
from gemma3n_gguf.core.ggml import SUPPORTED_TYPES
from gemma3n_gguf.engine.schemes import RuleTable, Scheme, get_scheme, parse_tensor_type


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the GGUF file will hold it; ``shape`` is in ggml order (ne0 first)."""

    name: str
    shape: tuple[int, ...]
    source_type: GGMLType
    role: Role | None = None  # a projector tensor's role, which its rule table types it by


@dataclass(frozen=True)
class TensorChoice:
    """The type chosen for one tensor and the rule that chose it (for ``--dry-run``)."""

    name: str
    qtype: GGMLType
    reason: str
    requires_imatrix: bool = False
    overruled: bool = False  # the rule table could not give the requested type (the converter warns)


@dataclass(frozen=True)
class PlanOptions:
    """User control, named after llama-quantize's flags (``ple_type`` is ours)."""

    tensor_type: Sequence[tuple[str, GGMLType]] = ()  # (regex, type): re.search, first match wins
    token_embedding_type: GGMLType | None = None
    ple_type: GGMLType | None = None
    output_tensor_type: GGMLType | None = None
    pure: bool = False
    has_imatrix: bool = False
    leave_output_tensor: bool = False

    def __post_init__(self) -> None:
        # Accept type names ("q8_0") anywhere a type is expected; refuse types we have no kernel for.
        for attr in ("token_embedding_type", "ple_type", "output_tensor_type"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, _supported(parse_tensor_type(value), attr))
        pairs = tuple((pattern, _supported(parse_tensor_type(qtype), f"--tensor-type {pattern!r}"))
                      for pattern, qtype in self.tensor_type)
        object.__setattr__(self, "tensor_type", pairs)


def _supported(qtype: GGMLType, option: str) -> GGMLType:
    if qtype not in SUPPORTED_TYPES:
        names = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))
        raise QuantizationError(f"{option}: {qtype.name} is not supported; use one of: {names}")
    return qtype


def parse_tensor_type_arg(arg: str) -> tuple[str, GGMLType]:
    """``REGEX=TYPE`` as llama-quantize's ``--tensor-type`` reads it (the regex is lower-cased)."""
    pattern, sep, type_name = arg.partition("=")
    if not sep or not pattern or not type_name:
        raise QuantizationError(f"--tensor-type expects REGEX=TYPE (e.g. 'attn_v=q8_0'), got {arg!r}")
    return pattern.lower(), parse_tensor_type(type_name)


def llama_order_key(name: str) -> tuple[int, bytes]:
    """llama.cpp's ``weights_map`` order: layer number (non-block tensors first), then name."""
    match = re.match(r"blk\.\s*([+-]?\d+)", name)
    return (int(match.group(1)) if match else -1, name.encode())


@dataclass
class _Counters:
    n_attention_wv: int
    n_layer: int
    i_attention_wv: int = 0
    i_ffn: dict[Category, int] = field(default_factory=dict)

    def take(self, category: Category) -> tuple[int, int]:
        """The (i, n) a rule sees for this category, then advance that counter."""
        if category in ATTN_V_LIKE:
            i, n = self.i_attention_wv, self.n_attention_wv
            self.i_attention_wv += 1
            return i, n
        if category in (Category.FFN_DOWN, Category.FFN_GATE, Category.FFN_UP):
            i = self.i_ffn.get(category, 0)
            self.i_ffn[category] = i + 1
            return i, self.n_layer
        return 0, 0


class _Planner:
    def __init__(self, tensors: Sequence[TensorInfo], scheme: Scheme, options: PlanOptions):
        self.scheme = scheme
        self.options = options
        self.patterns = _compile_patterns(options.tensor_type)
        names = {t.name for t in tensors}
        self.tied = rules.OUTPUT_NAME not in names
        self.gqa = _gqa_from_shapes({t.name: t.shape for t in tensors})
        self.counters = _Counters(
            n_attention_wv=sum(rules.category_of(t.name) in ATTN_V_LIKE for t in tensors),
            n_layer=_layer_count(t.name for t in tensors),
        )

    def choose(self, tensor: TensorInfo) -> TensorChoice:
        if self.scheme.rule_table is RuleTable.PROJECTOR:
            decided = projector_type(tensor.role, tensor.shape[0], self.scheme.default_type)
            return TensorChoice(tensor.name, decided.qtype, decided.reason, overruled=decided.overruled)
        qtype, reason = self._decide(tensor)
        if tensor.shape and tensor.shape[0] % rules.block_size(qtype):
            raise QuantizationError(
                f"{tensor.name}: rows of {tensor.shape[0]} values cannot be {qtype.name} "
                f"({reason}); pick a type whose block size divides {tensor.shape[0]}")
        needs = qtype != tensor.source_type and rules.requires_imatrix(tensor.name, qtype, self.scheme.name)
        return TensorChoice(tensor.name, qtype, reason, needs)

    def _decide(self, tensor: TensorInfo) -> tuple[GGMLType, str]:
        if self.scheme.rule_table is RuleTable.CONVERT:
            return convert_type(tensor.name, tensor.shape, self.scheme.default_type)
        options, category = self.options, rules.category_of(tensor.name)
        skip = rules.why_not_quantized(tensor.name, tensor.shape, options.leave_output_tensor)
        if skip is not None:
            return tensor.source_type, f"kept as {tensor.source_type.name}: {skip}"
        if options.ple_type is not None and tensor.name == PLE_NAME:
            # Same as llama-quantize's `--tensor-type per_layer_token_embd=GGMLType` (which llama-quantize
            # ignores in F16/BF16/F32 files; --ple-type applies there too).
            if not self.scheme.is_quantized:
                return options.ple_type, "--ple-type"
            return rules.shape_fallback(options.ple_type, tensor.shape[0]), "--ple-type"
        if options.token_embedding_type is not None and category is Category.TOKEN_EMBD:
            if not (tensor.name == PLE_NAME and self._pattern_for(tensor.name)):
                return options.token_embedding_type, "--token-embedding-type"
        if options.output_tensor_type is not None and category is Category.OUTPUT:
            return options.output_tensor_type, "--output-tensor-type"
        if not self.scheme.is_quantized:
            return self.scheme.default_type, f"{self.scheme.name} scheme"
        qtype, reason = self._mixed_type(tensor, category)
        fallback = rules.shape_fallback(qtype, tensor.shape[0])
        if fallback != qtype:
            reason += f"; ne0 {tensor.shape[0]} not divisible by {qtype.name}'s block -> {fallback.name}"
        return fallback, reason

    def _mixed_type(self, tensor: TensorInfo, category: Category) -> tuple[GGMLType, str]:
        matched = self._pattern_for(tensor.name)
        if matched is not None:
            pattern, qtype = matched
            return qtype, f"--tensor-type {pattern!r}"
        if self.options.pure:
            return self.scheme.default_type, "--pure: scheme default"
        return self._rule_type(tensor, category)

    def _rule_type(self, tensor: TensorInfo, category: Category) -> tuple[GGMLType, str]:
        default = self.scheme.default_type
        if category is Category.OUTPUT or (self.tied and category is Category.TOKEN_EMBD):
            if self.options.output_tensor_type is not None:
                return self.options.output_tensor_type, "--output-tensor-type (tied embedding)"
            return rules.tied_embedding_type(default, tensor.shape[0])
        i, n = self.counters.take(category)
        ctx = LayerContext(i, n, self.gqa, self.options.has_imatrix)
        rule = rules.apply_rules(category, self.scheme.name, ctx)
        if rule is None:
            return default, "scheme default"
        return rule.qtype, f"{category.value} rule of {self.scheme.name}: {rule.text} (i={i}, n={n})"

    def _pattern_for(self, name: str) -> tuple[str, GGMLType] | None:
        for pattern, compiled, qtype in self.patterns:
            if compiled.search(name):
                return pattern, qtype
        return None


def plan_types(tensors: Sequence[TensorInfo], scheme: Scheme | str,
               options: PlanOptions = PlanOptions()) -> list[TensorChoice]:
    """The type of every tensor, in the order given, as llama-quantize would choose it.

    Rules are evaluated in llama.cpp's tensor order (:func:`llama_order_key`), which is
    also the order a byte-identical output file must use.
    """
    planner = _Planner(tensors, get_scheme(scheme), options)
    order = sorted(range(len(tensors)), key=lambda k: llama_order_key(tensors[k].name))
    choices: list[TensorChoice | None] = [None] * len(tensors)
    for index in order:
        choices[index] = planner.choose(tensors[index])
    return choices  # type: ignore[return-value]


def unmatched_patterns(tensors: Iterable[TensorInfo], options: PlanOptions) -> list[str]:
    """The ``tensor_type`` regexes that match no tensor name (the CLI warns about them)."""
    names = [t.name for t in tensors]
    return [pattern for pattern, compiled, _ in _compile_patterns(options.tensor_type)
            if not any(compiled.search(name) for name in names)]


def check_imatrix_requirement(choices: Iterable[TensorChoice], imatrix_names: set[str] | None) -> None:
    """Raise if a tensor's type needs imatrix data that is absent (Q2_K in a Q2_K_S file)."""
    have = imatrix_names or set()
    missing = [c.name for c in choices if c.requires_imatrix and c.name not in have]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise QuantizationError(
            f"these tensors need importance-matrix data for their type: {shown}; "
            "pass --imatrix with entries for them, or choose a scheme that does not need one")


def _compile_patterns(pairs: Sequence[tuple[str, GGMLType]]) -> list[tuple[str, re.Pattern[str], GGMLType]]:
    compiled = []
    for pattern, qtype in pairs:
        try:
            compiled.append((pattern, re.compile(pattern), qtype))
        except re.error as exc:
            raise QuantizationError(f"--tensor-type pattern {pattern!r} is not a valid regex: {exc}") from None
    return compiled


def _layer_count(names: Iterable[str]) -> int:
    """``block_count``, read from the names: one more than the highest ``blk.N.``."""
    layers = [llama_order_key(name)[0] for name in names]
    return max(layers, default=-1) + 1


def _gqa_from_shapes(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """n_head / n_head_kv of layer 0, as attn_q's output width over attn_k's (head dims cancel)."""
    q = shapes.get("blk.0.attn_q.weight")
    kv = shapes.get("blk.0.attn_k.weight") or shapes.get("blk.0.attn_v.weight")
    if q is None or kv is None or len(q) < 2 or len(kv) < 2 or kv[1] == 0:
        return None
    return q[1] // kv[1]
