"""llama-perplexity's evaluation protocol: which tokens each model sees and which are scored.

The text is tokenized once (with BOS). The token stream is cut into non-overlapping windows of
``n_ctx`` tokens; the tail that does not fill a window is dropped, and ``--chunks N`` keeps the
first N windows. Each window is evaluated from an empty KV cache with its first token
overwritten (not prepended) by BOS. Only the second half is scored: positions
``n_ctx // 2 .. n_ctx - 2``, where position j predicts token j + 1, so every scored token has
at least ``n_ctx / 2`` tokens of context (``n_ctx - 1 - n_ctx // 2`` tokens per window, 255 for
n_ctx = 512).

llama-perplexity refuses texts shorter than 2 x n_ctx tokens in its default mode; we need only
one window. Whenever llama-perplexity runs, both cut and score identical windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.errors import ValidationError

MIN_CONTEXT = 3  # the smallest n_ctx that scores at least one token per window


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Window:
    """One evaluation window of the token stream."""

    index: int
    start: int
    """Offset of the window's first token in the token stream."""
    token_ids: NDArray[np.int32]
    """The ids the model evaluates: the stream's tokens with the first one replaced by BOS."""
    original_first_id: int
    """The stream's token at ``start``, before the BOS substitution."""

    @property
    def n_ctx(self) -> int:
        return len(self.token_ids)

    @property
    def first_scored(self) -> int:
        """First position whose prediction is scored (``n_ctx // 2``)."""
        return self.n_ctx // 2

    @property
    def scored_positions(self) -> slice:
        """Logit rows to score: positions ``n_ctx // 2 .. n_ctx - 2``."""
        return slice(self.first_scored, self.n_ctx - 1)

    @property
    def n_scored(self) -> int:
        return self.n_ctx - 1 - self.first_scored

    @property
    def targets(self) -> NDArray[np.int32]:
        """The tokens predicted at the scored positions (never the substituted BOS)."""
        return self.token_ids[self.first_scored + 1 :]

    @property
    def stream_token_ids(self) -> NDArray[np.int32]:
        """The window's tokens as they are in the stream (before BOS substitution)."""
        ids = self.token_ids.copy()
        ids[0] = self.original_first_id
        return ids

    def scored_logits(self, logits: NDArray[np.floating], first_row: int = 0) -> NDArray:
        """The scored rows of a window's logits, given they start at position ``first_row``."""
        if not 0 <= first_row <= self.first_scored:
            raise ValidationError(
                f"logits from position {first_row} miss scored positions from {self.first_scored}"
            )
        if logits.shape[0] < self.n_ctx - 1 - first_row:
            raise ValidationError(
                f"{logits.shape[0]} logit rows from position {first_row}, "
                f"need {self.n_ctx - 1 - first_row} for a window of {self.n_ctx}"
            )
        offset = self.first_scored - first_row
        return logits[offset : offset + self.n_scored]


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class WindowPlan:
    """All windows of one text, as llama-perplexity evaluates them."""

    n_ctx: int
    n_text_tokens: int
    bos_id: int | None
    windows: tuple[Window, ...]

    def __iter__(self) -> Iterator[Window]:
        return iter(self.windows)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def n_scored(self) -> int:
        return sum(window.n_scored for window in self.windows)

    @property
    def stream_token_ids(self) -> NDArray[np.int32]:
        """The evaluated part of the stream (windows concatenated, before BOS substitution)."""
        if not self.windows:
            return np.empty(0, dtype=np.int32)
        return np.concatenate([window.stream_token_ids for window in self.windows])

    def evaluated_windows(self) -> list[NDArray[np.int32]]:
        """The token ids each model evaluates, one array per window (runner input)."""
        return [window.token_ids for window in self.windows]


def plan_windows(
    token_ids: ArrayLike,
    n_ctx: int,
    *,
    bos_id: int | None,
    chunks: int | None = None,
) -> WindowPlan:
    """Cut a tokenized text into llama-perplexity's windows.

    ``bos_id`` is the id written over each window's first token (``None`` when the vocabulary
    does not add BOS, as llama-perplexity then leaves the token alone). ``chunks`` keeps at most
    that many windows (``None`` or negative = all, like ``--chunks -1``).
    """
    ids = _as_token_ids(token_ids)
    if n_ctx < MIN_CONTEXT:
        raise ValidationError(f"--ctx {n_ctx} is too small: a window needs at least {MIN_CONTEXT}")
    if chunks == 0:
        raise ValidationError("--chunks 0 leaves nothing to evaluate (use -1 for all windows)")
    if len(ids) < n_ctx:
        raise ValidationError(
            f"the text tokenizes to {len(ids)} tokens, but one window of --ctx {n_ctx} needs "
            f"at least {n_ctx}; use a longer text or a smaller --ctx"
        )
    n_windows = len(ids) // n_ctx
    if chunks is not None and chunks > 0:
        n_windows = min(n_windows, chunks)
    windows = tuple(_make_window(ids, index, n_ctx, bos_id) for index in range(n_windows))
    return WindowPlan(n_ctx=n_ctx, n_text_tokens=len(ids), bos_id=bos_id, windows=windows)


def _make_window(ids: NDArray[np.int32], index: int, n_ctx: int, bos_id: int | None) -> Window:
    start = index * n_ctx
    tokens = ids[start : start + n_ctx].copy()
    original_first = int(tokens[0])
    if bos_id is not None:
        tokens[0] = bos_id
    tokens.flags.writeable = False
    return Window(index=index, start=start, token_ids=tokens, original_first_id=original_first)


def _as_token_ids(token_ids: ArrayLike) -> NDArray[np.int32]:
    ids = np.asarray(token_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValidationError(f"token ids must be a 1-D integer sequence, got {ids.dtype} {ids.shape}")
    if ids.size and ids.min() < 0:
        raise ValidationError(f"negative token id {int(ids.min())}")
    return ids.astype(np.int32)
