"""A slice as a model to write: the engine's checkpoint input over a :class:`SlicedCheckpoint`,
with the slice's own key-values (what it is, its size, which runtimes run it).

The GGUF is written by the one write path (``quantize.onepass``: planner, threaded pipeline,
streaming writer) in one pass over the original safetensors: no sliced checkpoint on disk.
"""

from __future__ import annotations

from gguf import MODEL_TENSOR, GGUFValue, GGUFValueType

from gemma3n_gguf.engine.inputs import CheckpointInput
from gemma3n_gguf.engine.kv import KVs
from gemma3n_gguf.model.names import gguf_name
from gemma3n_gguf.model.runtimes import Verdict, runtime_verdicts, verdict_metadata
from gemma3n_gguf.model.text_plan import TextPlan
from gemma3n_gguf.slice.checkpoint import SlicedCheckpoint

SLICE_PREFIX = "gemma3n_gguf.slice."
# Google's "effective parameters" leave out the two embedding tables (token and per-layer)
EMBEDDING_TENSORS = frozenset(gguf_name(kind) for kind in (MODEL_TENSOR.TOKEN_EMBD, MODEL_TENSOR.PER_LAYER_TOKEN_EMBD,
                                                                  MODEL_TENSOR.OUTPUT))
PLE_TABLE = gguf_name(MODEL_TENSOR.PER_LAYER_TOKEN_EMBD)


def effective_parameters(plan: TextPlan) -> int:
    """Parameters of the text model without the embedding tables (Google's 'effective' count)."""
    return sum(t.n_elements for t in plan.tensors if t.name not in EMBEDDING_TENSORS)


class SlicedInput(CheckpointInput):
    """The sliced checkpoint as the file ``convert --outtype <intermediate>`` would write, plus
    the ``gemma3n_gguf.slice.*`` and ``gemma3n_gguf.runtime.*`` keys."""

    def __init__(self, sliced: SlicedCheckpoint, *, intermediate: str = "f32", force: bool = True):
        super().__init__(sliced, intermediate=intermediate, force=force)
        self.sliced = sliced
        self.name = f"{self.name}-{sliced.slice.name or 'sliced'}"
        self.verdicts: tuple[Verdict, ...] = runtime_verdicts(self.config)
        self.warnings = []  # the slice's departures from llama.cpp are in the verdicts
        self.size_kv: list[tuple[str, int]] = []  # set by the caller once the output's types are planned

    @property
    def effective_parameters(self) -> int:
        return effective_parameters(self.plan)

    def kv(self) -> KVs:
        kv = super().kv()
        s = self.sliced.slice
        u32, u64 = GGUFValueType.UINT32, GGUFValueType.UINT64
        kv[SLICE_PREFIX + "config"] = _string(s.name or "custom")
        kv[SLICE_PREFIX + "source_layers"] = GGUFValue(s.source_layers, u32)
        # a string: GGUF has no empty arrays
        kv[SLICE_PREFIX + "skipped_layers"] = _string(",".join(map(str, s.skipped)))
        kv[SLICE_PREFIX + "effective_parameters"] = GGUFValue(self.effective_parameters, u64)
        for key, value in self.size_kv:
            kv[SLICE_PREFIX + key] = GGUFValue(value, u64)
        for key, text in verdict_metadata(self.verdicts):
            kv[key] = _string(text)
        return kv


def _string(text: str) -> GGUFValue:
    return GGUFValue(text.encode(), GGUFValueType.STRING)
