"""One sweep's outcome: a row per scheme (size against quality) and the reports behind them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma3n_gguf.core.stats import Estimate, jsonable
from gemma3n_gguf.validate.report import ValidationReport


@dataclass(frozen=True)
class SweepRow:
    scheme: str
    path: str
    file_bytes: int
    bits_per_weight: float
    ppl_ratio: Estimate
    kld_mean: Estimate
    kld_p99: float
    same_top1: Estimate
    quantize_seconds: float
    validate_seconds: float

    @classmethod
    def from_report(cls, scheme: str, report: ValidationReport, quantize_seconds: float,
                    validate_seconds: float) -> SweepRow:
        k = report.kld
        return cls(scheme, report.model, report.model_bytes, report.bits_per_weight, k.ppl_ratio,
                   k.kld_mean, k.kld_percentiles["99"], k.same_top1, quantize_seconds, validate_seconds)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for name in ("ppl_ratio", "kld_mean", "same_top1"):
            data[name] = getattr(self, name).to_dict()
        return data


@dataclass(frozen=True)
class SweepResult:
    checkpoint: str
    rows: tuple[SweepRow, ...]
    reports: tuple[ValidationReport, ...]
    reference_runs: int
    """Transformers passes this sweep ran: 1, or 0 when the reference came from the cache."""
    outputs: dict[str, str]
    """``markdown``, ``json`` and ``plot`` paths."""

    def to_dict(self) -> dict[str, Any]:
        first = self.reports[0]
        return jsonable({
            "checkpoint": self.checkpoint,
            "text": {"name": first.text_name, "sha256": first.text_sha256},
            "n_ctx": first.n_ctx,
            "windows": first.n_windows,
            "scored_tokens": first.kld.n_tokens,
            "reference_runs": self.reference_runs,
            "weight_repack": first.weight_repack,
            "rows": [row.to_dict() for row in self.rows],
            "outputs": self.outputs,
        })
