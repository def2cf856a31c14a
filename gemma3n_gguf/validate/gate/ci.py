"""The two gate operations: record a baseline, and check a GGUF against one.

Usage problems (no baseline file, a malformed one, a run whose protocol differs from the
baseline's, a baseline that needs images the run was not given) raise
:class:`~gemma3n_gguf.core.errors.BaselineError` before any model runs; the CLI maps it to
exit 2. A GGUF that cannot be validated at all raises the usual typed errors (exit 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from gemma3n_gguf.core.errors import BaselineError
from gemma3n_gguf.reference.evaltext import EvalText
from gemma3n_gguf.validate.gate.baseline import GateResult, evaluate, load_baseline, protocol_for, write_baseline
from gemma3n_gguf.reference.mode import AUTO
from gemma3n_gguf.validate.pipeline import PhaseProgress, Validator
from gemma3n_gguf.validate.report import ValidationReport

PathLike = str | os.PathLike[str]


def record_baseline(
    model_gguf: PathLike,
    reference_dir: PathLike,
    baseline_path: PathLike,
    *,
    text: PathLike | EvalText | None = None,
    n_ctx: int | None = None,
    chunks: int | None = None,
    align_vocab: bool | None = None,
    cache_dir: PathLike | None = None,
    mmproj: PathLike | None = None,
    images: Sequence[PathLike] = (),
    audios: Sequence[PathLike] = (),
    on_progress: PhaseProgress | None = None,
    reference_mode: str = AUTO,
) -> tuple[ValidationReport, dict[str, Any]]:
    """Validate ``model_gguf`` and write its numbers, with tolerances, as a new baseline."""
    validator = Validator(reference_dir, text=text, n_ctx=n_ctx or 512, chunks=chunks, cache_dir=cache_dir,
                          align_vocab=bool(align_vocab), on_progress=on_progress, reference_mode=reference_mode)
    report = validator.validate(model_gguf, mmproj=mmproj, images=images, audios=audios)
    protocol = protocol_for(validator.text, validator.n_ctx, validator.chunks, validator.align_vocab,
                            validator.fingerprint)
    return report, write_baseline(baseline_path, report, protocol)


def check(
    model_gguf: PathLike,
    reference_dir: PathLike,
    baseline_path: PathLike,
    *,
    text: PathLike | EvalText | None = None,
    n_ctx: int | None = None,
    chunks: int | None = None,
    align_vocab: bool | None = None,
    cache_dir: PathLike | None = None,
    mmproj: PathLike | None = None,
    images: Sequence[PathLike] = (),
    audios: Sequence[PathLike] = (),
    on_progress: PhaseProgress | None = None,
    reference_mode: str = AUTO,
) -> GateResult:
    """Validate ``model_gguf`` with the baseline's protocol and check each of its limits.

    ``n_ctx``, ``chunks`` and ``align_vocab`` default to the baseline's; given values that
    differ from it are a usage error, as are a different text or reference checkpoint.
    """
    baseline = load_baseline(baseline_path)
    wanted = baseline.protocol
    validator = Validator(
        reference_dir, text=text, n_ctx=wanted.n_ctx if n_ctx is None else n_ctx,
        chunks=wanted.chunks if chunks is None else chunks, cache_dir=cache_dir,
        align_vocab=wanted.align_vocab if align_vocab is None else align_vocab, on_progress=on_progress,
        reference_mode=reference_mode,
    )
    run = protocol_for(validator.text, validator.n_ctx, validator.chunks, validator.align_vocab,
                       validator.fingerprint)
    differences = wanted.differences(run)
    if differences:
        raise BaselineError(
            f"baseline {baseline.path} was measured differently: {'; '.join(differences)}. "
            "Run with the baseline's settings or rewrite it with --write-baseline"
        )
    for kind, given in (("image", images), ("audio", audios)):
        if baseline.needs(kind) and not given:
            raise BaselineError(f"baseline {baseline.path} checks {kind} embeddings: pass --{kind} (and --mmproj)")
    report = validator.validate(model_gguf, mmproj=mmproj, images=images, audios=audios)
    return evaluate(report, baseline)
