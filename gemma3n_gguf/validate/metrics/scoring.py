"""The candidate pass: run a GGUF through llama.cpp on the planned windows, score against the cache.

One window of logits is in memory at a time (the candidate's scored rows and the reference's
cached rows), and scores are accumulated in blocks of rows, so memory does not grow with the
text even for a 262,400-token vocabulary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.validate.metrics.kld import KLDAccumulator, ReferenceRows
from gemma3n_gguf.reference.cache import CachedReference
from gemma3n_gguf.validate.report import ConfidentTop1
from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
from gemma3n_gguf.reference.windows import WindowPlan

CONFIDENT_GAP = 0.1  # nats; parity-and-fixtures.md §3
_BLOCK_ROWS = 16

WindowProgress = Callable[[int, int], None]


@dataclass
class ConfidentTop1Accumulator:
    """Same-top-1 counted only where the reference's top-2 log-prob gap exceeds ``gap``.

    With cached rows the gap is read from log-probs rounded to (16 nats / 65535), far below
    the 0.1-nat threshold.
    """

    gap: float = CONFIDENT_GAP
    _confident: int = field(default=0, init=False)
    _agreeing: int = field(default=0, init=False)

    def add(self, reference: ReferenceRows, candidate_logits: NDArray[np.floating]) -> None:
        for start in range(0, len(reference), _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, len(reference))
            top2 = np.partition(reference.logprobs(start, stop), -2, axis=1)[:, -2:]
            confident = (top2[:, 1] - top2[:, 0]) > self.gap
            agree = candidate_logits[start:stop].argmax(axis=1) == reference.top1[start:stop]
            self._confident += int(confident.sum())
            self._agreeing += int((agree & confident).sum())

    def finish(self) -> ConfidentTop1:
        agreement = self._agreeing / self._confident if self._confident else math.nan
        return ConfidentTop1(agreement, self._confident, self.gap)


@dataclass
class CandidateScores:
    kld: KLDAccumulator
    confident_top1: ConfidentTop1Accumulator
    weight_repack: bool = True  # as the runner loaded the model, not as it was asked


def score_candidate(
    model_gguf: str | os.PathLike[str],
    plan: WindowPlan,
    reference: CachedReference,
    n_vocab: int,
    *,
    kv_cache_f32: bool = False,
    repack: bool = True,
    n_threads: int | None = None,
    on_progress: WindowProgress | None = None,
) -> CandidateScores:
    """Score every window of ``plan``; the candidate's logits are cut to ``n_vocab`` columns."""
    scores = CandidateScores(KLDAccumulator(), ConfidentTop1Accumulator())
    first_row = plan.n_ctx // 2
    if on_progress is not None:
        on_progress(0, len(plan))  # the bar appears while the model loads
    with LlamaCppRunner(model_gguf, n_ctx=plan.n_ctx, kv_cache_f32=kv_cache_f32, repack=repack,
                        n_threads=n_threads) as runner:
        scores.weight_repack = runner.settings["weight_repack"]
        candidate_windows = runner.iter_window_logits(
            plan.evaluated_windows(), first_row=first_row, on_progress=on_progress
        )
        # The runner first: zip then resumes it past its last window, so it reports completion.
        for logits, window, reference_rows in zip(candidate_windows, plan, reference.iter_windows(), strict=True):
            rows = window.scored_logits(logits, first_row=first_row)[:, :n_vocab]
            scores.kld.add(reference_rows, rows, window.targets)
            scores.confident_top1.add(reference_rows, rows)
    return scores
