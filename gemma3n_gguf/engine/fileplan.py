"""The output file of a quantization, before a byte is written: tensors, types, sizes, key-values.

This is what ``--dry-run`` shows (per tensor group: types, counts, bytes, bits per weight; the
file size; the PLE table's share) and what the writer follows.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gguf import GGMLQuantizationType as GGMLType

from gemma3n_gguf.core.gguf_write import SizedTensor
from gemma3n_gguf.engine.kv import GGUF_ALIGNMENT, KVs, metadata_nbytes
from gemma3n_gguf.engine.rules import PLE_NAME, ggml_n_dims
from gemma3n_gguf.engine.schemes import Scheme

_GGUF_HEADER_BYTES = 4 + 4 + 8 + 8  # magic, version, tensor count, key-value count


def _pad(n: int) -> int:
    return -(-n // GGUF_ALIGNMENT) * GGUF_ALIGNMENT


@dataclass(frozen=True)
class PlannedOutput(SizedTensor):
    """One tensor of the output file; ``shape`` in ggml order, like every plan of the engine."""

    name: str
    shape: tuple[int, ...]  # ggml order (ne0 first), as in the input
    source_type: GGMLType
    qtype: GGMLType
    reason: str
    imatrix: bool = False  # quantized with importance-matrix data
    every_dim: bool = False  # written with every dimension, trailing 1s too, as the projector is

    @property
    def converted(self) -> bool:
        return self.qtype != self.source_type

    @property
    def written_shape(self) -> tuple[int, ...]:
        """The shape the writer takes: numpy order, trailing ggml dimensions of 1 dropped (as
        gguf.cpp writes n_dims) unless ``every_dim``."""
        n_dims = len(self.shape) if self.every_dim else ggml_n_dims(self.shape)
        return tuple(reversed(self.shape[:n_dims]))

    @property
    def group(self) -> str:
        """The name without its layer or block: ``blk.3.attn_q.weight`` -> ``attn_q``,
        ``v.blk.2.7.dw_mid.conv.weight`` -> ``v.dw_mid.conv``, ``a.blk.0.ffn_up.weight`` -> ``a.ffn_up``."""
        return re.sub(r"\.weight$", "", re.sub(r"^([av]\.)?blk\.\d+\.(\d+\.)?", r"\1", self.name))

    def info_nbytes(self) -> int:
        """Bytes of this tensor's entry in the GGUF tensor-info table."""
        return 8 + len(self.name.encode()) + 4 + 8 * len(self.written_shape) + 4 + 8


@dataclass
class QuantizationPlan:
    """Everything about the output file that does not need the weights."""

    source: str
    scheme: Scheme
    tensors: list[PlannedOutput]  # output order (llama.cpp's)
    kv: KVs
    imatrix_file: str | None = None
    imatrix_missing: list[str] = field(default_factory=list)  # quantized without imatrix data
    unmatched_patterns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def file_bytes(self) -> int:
        header = _GGUF_HEADER_BYTES + metadata_nbytes(self.kv) + sum(t.info_nbytes() for t in self.tensors)
        return _pad(header) + sum(_pad(t.nbytes) for t in self.tensors)

    @property
    def n_elements(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    def groups(self) -> list[dict[str, Any]]:
        """Per tensor group: count, types, parameters, bytes, bits per weight (largest first)."""
        rows: dict[str, dict[str, Any]] = {}
        for t in self.tensors:
            row = rows.setdefault(t.group, {"group": t.group, "tensors": 0, "types": Counter(),
                                           "parameters": 0, "bytes": 0})
            row["tensors"] += 1
            row["types"][t.qtype.name] += 1
            row["parameters"] += t.n_elements
            row["bytes"] += t.nbytes
        for row in rows.values():
            row["types"] = dict(sorted(row["types"].items()))
            row["bits_per_weight"] = 8 * row["bytes"] / row["parameters"] if row["parameters"] else 0.0
        return sorted(rows.values(), key=lambda r: -r["bytes"])

    def ple_share(self) -> float:
        """Fraction of the tensor bytes taken by the PLE table (per_layer_token_embd)."""
        ple = sum(t.nbytes for t in self.tensors if t.name == PLE_NAME)
        return ple / self.tensor_bytes if self.tensor_bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "scheme": self.scheme.name,
            "file_type": int(self.scheme.ftype),
            "file_bytes": self.file_bytes,
            "tensor_bytes": self.tensor_bytes,
            "parameters": self.n_elements,
            "bits_per_weight": 8 * self.tensor_bytes / self.n_elements if self.n_elements else 0.0,
            "ple_share": self.ple_share(),
            "types": dict(sorted(Counter(t.qtype.name for t in self.tensors).items())),
            "groups": self.groups(),
            "imatrix": self.imatrix_file,
            "imatrix_missing": self.imatrix_missing,
            "unmatched_patterns": self.unmatched_patterns,
            "warnings": self.warnings,
            "tensors": [{"name": t.name, "shape": list(t.shape), "from": t.source_type.name,
                         "type": t.qtype.name, "bytes": t.nbytes, "imatrix": t.imatrix, "reason": t.reason}
                        for t in self.tensors],
        }
