"""The CI quality gate: a baseline file of limits, and a validation report checked against it.

Schema (version 2; ``docs/ci-gate.md`` is the user documentation)::

    {
      "format": "gemma3n-gguf-baseline",
      "version": 2,
      "written_by": "gemma3n-gguf 0.1.0",
      "model": "model-Q4_K_M.gguf",                  (informational)
      "protocol": {                                   (what makes numbers comparable)
        "n_ctx": 512, "chunks": 4,                    (chunks null = all windows)
        "align_vocab": false,
        "text": {"name": "...", "sha256": "..."},
        "reference_sha256": "..."                    (every byte of the checkpoint)
      },
      "checks": {                                     (each: "measured" and one of "max"/"min")
        "kld_mean": {"measured": 0.0105, "max": 0.0142},
        "same_top1": {"measured": 0.928, "min": 0.918},
        ...
      }
    }

A run fails a ``max`` check when its value is above the limit and a ``min`` check when below;
a better value never fails. Limits are the measured value plus a tolerance when the file is
written (:data:`CHECKS`), and may be edited by hand. Problems with the file itself, or a run
whose protocol differs from the baseline's, raise :class:`BaselineError` (exit 2).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma3n_gguf.core.version import __version__
from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.core.errors import BaselineError
from gemma3n_gguf.reference.evaltext import EvalText
from gemma3n_gguf.validate.report import ValidationReport
from gemma3n_gguf.core.stats import jsonable

FORMAT = "gemma3n-gguf-baseline"
VERSION = 2  # 2: the reference is identified by a full content hash (1: a sampled one)


@dataclass(frozen=True)
class CheckSpec:
    """A metric the gate knows: how to read it from a report and how to set its limit."""

    description: str
    direction: str  # "max": lower is better; "min": higher is better
    read: Callable[[ValidationReport], tuple[float | None, float]]
    """(value, uncertainty) of a report; value ``None`` when the run did not measure it."""
    limit: Callable[[float, float], float]
    """The limit written into a new baseline from (value, uncertainty)."""
    default: bool = True
    """Written by ``--write-baseline`` whenever the report has a value."""


def _kld(r: ValidationReport) -> tuple[float | None, float]:
    return r.kld.kld_mean.value, r.kld.kld_mean.uncertainty


def _media(kind: str) -> Callable[[ValidationReport], tuple[float | None, float]]:
    return lambda r: (r.embedding_cosine(kind), 0.0)


CHECKS: dict[str, CheckSpec] = {
    "kld_mean": CheckSpec(
        "mean KLD (reference || candidate), nats", "max", _kld,
        lambda v, u: v * 1.25 + 3 * u + 1e-6),
    "kld_p99": CheckSpec(
        "99th percentile of per-token KLD, nats", "max",
        lambda r: (r.kld.kld_percentiles["99"], 0.0), lambda v, u: v * 1.25 + 1e-6),
    "same_top1": CheckSpec(
        "fraction of tokens whose top-1 token agrees with the reference's", "min",
        lambda r: (r.kld.same_top1.value, r.kld.same_top1.uncertainty), lambda v, u: v - max(0.01, 3 * u)),
    "confident_top1": CheckSpec(
        "top-1 agreement where the reference's top-2 gap > 0.1 nats", "min",
        lambda r: (r.confident_top1.agreement, 0.0), lambda v, u: v - 0.01, default=False),
    "ppl_ratio": CheckSpec(
        "PPL(candidate) / PPL(reference)", "max",
        lambda r: (r.kld.ppl_ratio.value, r.kld.ppl_ratio.uncertainty), lambda v, u: v + max(0.01 * v, 3 * u)),
    "tokenizer_match": CheckSpec(
        "1 when the GGUF tokenizes the text exactly like the reference, else 0", "min",
        lambda r: (1.0 if r.tokenizer.agree else 0.0, 0.0), lambda v, u: v),
    "image_embedding_cosine": CheckSpec(
        "lowest image-embedding cosine (llama.cpp vs transformers)", "min",
        _media("image"), lambda v, u: v - max(1e-4, 1.0 - v)),
    "audio_embedding_cosine": CheckSpec(
        "lowest audio-embedding cosine (reference path)", "min",
        _media("audio"), lambda v, u: v - max(1e-4, 1.0 - v)),
}


@dataclass(frozen=True)
class Protocol:
    """Everything that must be equal for two runs' numbers to be comparable."""

    n_ctx: int
    chunks: int | None
    align_vocab: bool
    text_name: str
    text_sha256: str
    reference_sha256: str  # reference.identity.checkpoint_content_hash

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_ctx": self.n_ctx, "chunks": self.chunks, "align_vocab": self.align_vocab,
            "text": {"name": self.text_name, "sha256": self.text_sha256},
            "reference_sha256": self.reference_sha256,
        }

    def differences(self, run: Protocol) -> list[str]:
        found = []
        for name in ("n_ctx", "chunks", "align_vocab"):
            if getattr(self, name) != getattr(run, name):
                found.append(f"{name} is {getattr(run, name)} here, {getattr(self, name)} in the baseline")
        if self.text_sha256 != run.text_sha256:
            found.append(f"the text differs (baseline: {self.text_name}, sha256 {self.text_sha256[:12]}; "
                         f"this run: {run.text_name}, sha256 {run.text_sha256[:12]})")
        if self.reference_sha256 != run.reference_sha256:
            found.append("the reference checkpoint differs from the one the baseline was measured against")
        return found


@dataclass(frozen=True)
class Limit:
    name: str
    measured: float
    bound: float
    direction: str  # "max" or "min"


@dataclass(frozen=True)
class Baseline:
    path: Path
    model: str
    protocol: Protocol
    limits: tuple[Limit, ...]

    def needs(self, kind: str) -> bool:
        """Whether a check needs ``kind`` ("image"/"audio") inputs."""
        return any(limit.name == f"{kind}_embedding_cosine" for limit in self.limits)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    description: str
    direction: str
    measured: float | None
    uncertainty: float
    baseline: float
    bound: float
    passed: bool

    @property
    def verdict(self) -> str:
        """One line: what was measured against what."""
        if self.measured is None or math.isnan(self.measured):
            return f"{self.name}: not measured in this run (baseline {self.baseline:.6g})"
        relation = "<=" if self.direction == "max" else ">="
        status = "ok" if self.passed else "REGRESSION"
        return (f"{self.name}: {self.measured:.6g} (baseline {self.baseline:.6g}, "
                f"limit {relation} {self.bound:.6g}) {status}")

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "verdict": self.verdict}


@dataclass(frozen=True)
class GateResult:
    model: str
    baseline: str
    outcomes: tuple[CheckOutcome, ...]
    report: ValidationReport

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)

    @property
    def failures(self) -> list[CheckOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"passed": self.passed, "model": self.model, "baseline": self.baseline,
                         "checks": [o.to_dict() for o in self.outcomes], "report": self.report.to_dict()})


def protocol_for(text: EvalText, n_ctx: int, chunks: int | None, align_vocab: bool, reference_sha256: str) -> Protocol:
    """The protocol of a run, known before it runs (so a mismatch stops it early)."""
    return Protocol(n_ctx, chunks, align_vocab, text.name, text.sha256, reference_sha256)


def baseline_document(report: ValidationReport, protocol: Protocol) -> dict[str, Any]:
    """A new baseline for ``report``: every default check the report has a value for."""
    checks = {}
    for name, spec in CHECKS.items():
        value, uncertainty = spec.read(report)
        if spec.default and value is not None and math.isfinite(value):
            checks[name] = {"measured": value, spec.direction: spec.limit(value, uncertainty)}
    return {"format": FORMAT, "version": VERSION, "written_by": f"gemma3n-gguf {__version__}",
            "model": Path(report.model).name, "protocol": protocol.to_dict(), "checks": checks}


def write_baseline(path: str | os.PathLike[str], report: ValidationReport, protocol: Protocol) -> dict[str, Any]:
    document = baseline_document(report, protocol)
    write_text_atomically(path, json.dumps(document, indent=2) + "\n")
    return document


def evaluate(report: ValidationReport, baseline: Baseline) -> GateResult:
    """Check every limit of ``baseline`` against ``report``."""
    outcomes = []
    for limit in baseline.limits:
        spec = CHECKS[limit.name]
        value, uncertainty = spec.read(report)
        measurable = value is not None and math.isfinite(value)
        if not measurable:
            passed = False
        elif limit.direction == "max":
            passed = value <= limit.bound
        else:
            passed = value >= limit.bound
        outcomes.append(CheckOutcome(limit.name, spec.description, limit.direction, value, uncertainty,
                                     limit.measured, limit.bound, passed))
    return GateResult(report.model, str(baseline.path), tuple(outcomes), report)


# ---------------------------------------------------------------------------------------------
# Reading a baseline file: every problem is a BaselineError naming the file and the fix.


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline {source} does not exist; create it with --write-baseline {source}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {source}: {exc}") from None
    except ValueError as exc:
        raise BaselineError(f"baseline {source} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BaselineError(f"{source} is not a gemma3n-gguf baseline (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise BaselineError(f"baseline {source} has version {document.get('version')!r}; "
                            f"this gemma3n-gguf reads version {VERSION}: rewrite it with --write-baseline")
    return Baseline(source, str(document.get("model", "")), _read_protocol(source, document.get("protocol")),
                    _read_limits(source, document.get("checks")))


def _read_protocol(source: Path, raw: Any) -> Protocol:
    try:
        text = raw["text"]
        chunks = raw["chunks"]
        return Protocol(int(raw["n_ctx"]), None if chunks is None else int(chunks), bool(raw["align_vocab"]),
                        str(text["name"]), str(text["sha256"]), str(raw["reference_sha256"]))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: int(1e400)
        raise BaselineError(f"baseline {source}: \"protocol\" is incomplete or malformed ({exc!r})") from None


def _read_limits(source: Path, raw: Any) -> tuple[Limit, ...]:
    if not isinstance(raw, dict) or not raw:
        raise BaselineError(f"baseline {source}: \"checks\" must be a non-empty object")
    limits = []
    for name, entry in raw.items():
        if name not in CHECKS:
            raise BaselineError(f"baseline {source}: unknown check {name!r}; known: {', '.join(CHECKS)}")
        direction = CHECKS[name].direction
        if not isinstance(entry, dict) or direction not in entry or "measured" not in entry:
            raise BaselineError(f"baseline {source}: check {name!r} needs \"measured\" and \"{direction}\"")
        extra = sorted(set(entry) - {"measured", direction})
        if extra:
            raise BaselineError(f"baseline {source}: check {name!r} has keys it does not use: {', '.join(extra)} "
                                f"(a {name} limit is \"{direction}\")")
        try:
            limits.append(Limit(name, float(entry["measured"]), float(entry[direction]), direction))
        except (TypeError, ValueError):
            raise BaselineError(f"baseline {source}: check {name!r} has a non-numeric value") from None
    return tuple(limits)
