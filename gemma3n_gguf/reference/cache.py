"""A compact on-disk cache of the reference's scored log-probs: one reference pass, N candidates.

Per scored position it stores what llama-perplexity's KLD base file stores: the log-softmax
quantized to uint16 over the top 16 nats (``min = max(min_logit, max_logit - 16)``,
``scale = (max_logit - min) / 65535``, entries at or below ``min`` stored as 0). Three
per-row extras make it more exact than the base file for 24 bytes a row:

- the exact log-prob of the correct token and the exact top-1 token, so PPL(ref), Δp and
  same-top-1 are not rounded at all (the base file floors targets below max-16);
- ``mass_error`` = sum of (p_rounded - p_exact) over the entries the KLD keeps. The rounding
  error ε of log p enters the KLD sum at first order as sum(p·ε), which is exactly this
  mass error; subtracting it leaves only second-order terms (ε x (log p - log q), ε²/2).
  Measured on random logits with 262,400 entries per row: without it the per-token KLD is
  off by up to 3e-5 (normal logits with sd 4); with it, by at most 2.5e-7 when the true
  KLD is 5e-5, and below 1e-2 of the mean KLD across sd 1, sd 4 and heavy-tailed rows.

Each row is zlib-compressed; floored entries are zeros and cost almost nothing. Measured per
262,400-entry row (raw uint16: 512.5 KiB): flat normal logits 499 KiB, sd 4 227 KiB (73 %
floored), heavy-tailed 2.3 KiB; llama-perplexity's base file is 512.5 KiB a row whatever the
distribution, ~134 MB per 512-token window. Top-k storage was rejected: it
cannot bound the KLD of flat distributions, where the top thousand tokens of a 262,400-token
vocabulary hold a few percent of the mass.

File layout (little-endian)::

    magic "G3NREF01" | uint32 header length | header JSON
    int32 stream token ids [n_windows * n_ctx]          (before BOS substitution)
    per window: "WIN\\0" | uint32 index | uint32 n_rows
                float64 scale[n] | float64 min_log_prob[n] | float64 target_logprob[n]
                int64 top1[n] | float64 mass_error[n]
                per row: uint32 size | zlib(uint16[n_vocab])
    "END\\0" | uint32 n_windows

Files are written through :func:`gemma3n_gguf.core.atomic.atomic_path` (a cache file is complete
or absent) and written and read one window at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gemma3n_gguf.core.atomic import atomic_path
from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.core.llama_facts import LOG_PROB_FLOOR
from gemma3n_gguf.core.stats import as_logit_matrix, as_target_ids
from gemma3n_gguf.reference.windows import WindowPlan, plan_windows

FORMAT_VERSION = 1
LOG_PROB_RANGE = 16.0  # nats kept below each row's maximum, as llama-perplexity does
_MAGIC = b"G3NREF01"
_WINDOW_MARK = b"WIN\0"
_END_MARK = b"END\0"
_QMAX = 65535
_BLOCK_ROWS = 16
_SUFFIX = ".g3nref"


def reference_key(checkpoint_id: str, plan: WindowPlan, settings: Mapping[str, Any]) -> str:
    """Cache key: checkpoint identity, evaluated tokens, n_ctx, BOS and reference settings.

    ``checkpoint_id`` must cover every byte of the weights
    (:func:`gemma3n_gguf.reference.identity.checkpoint_content_hash`), never a sample of them.
    """
    described = {
        "format": FORMAT_VERSION,
        "checkpoint": checkpoint_id,
        "n_ctx": plan.n_ctx,
        "bos_id": plan.bos_id,
        "settings": dict(settings),
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    digest.update(plan.stream_token_ids.astype("<i4").tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gemma3n-gguf" / "reference"


# ---------------------------------------------------------------------------------------------
# Quantized rows


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class QuantizedReference:
    """One window's reference rows in cached form; implements ``metrics.ReferenceRows``."""

    quantized: NDArray[np.uint16]  # (n_rows, n_vocab)
    scale: NDArray[np.float64]
    min_log_prob: NDArray[np.float64]
    target_logprob: NDArray[np.float64]
    top1: NDArray[np.int64]
    mass_error: NDArray[np.float64]
    """Per row: sum of (p_rounded - p_exact) over entries with rounded log p > -16."""

    @property
    def n_vocab(self) -> int:
        return int(self.quantized.shape[1])

    def __len__(self) -> int:
        return int(self.quantized.shape[0])

    def logprobs(self, start: int, stop: int) -> NDArray[np.float64]:
        """Reconstructed log p: exact to half a step above max-16, ``min_log_prob`` below."""
        q = self.quantized[start:stop].astype(np.float64)
        q *= self.scale[start:stop, None]
        q += self.min_log_prob[start:stop, None]
        return q

    def kld_bias(self, start: int, stop: int, log_prob_floor: float | None) -> NDArray[np.float64]:
        """The rounding's first-order contribution to each row's KLD sum (see the module doc)."""
        if log_prob_floor != LOG_PROB_FLOOR:
            raise ValidationError(
                f"cached reference rows are exact only above log p = {LOG_PROB_FLOOR}; "
                f"a KLD floor of {log_prob_floor} needs the reference logits themselves"
            )
        return self.mass_error[start:stop]


def quantize_reference(logits: ArrayLike, targets: ArrayLike) -> QuantizedReference:
    """Quantize a window's scored reference logits (n_rows, n_vocab) into cached form."""
    matrix = as_logit_matrix(logits, "reference logits")
    n_rows, n_vocab = matrix.shape
    target_ids = as_target_ids(targets, n_rows, n_vocab)
    quantized = np.empty((n_rows, n_vocab), dtype=np.uint16)
    scale, min_log_prob, target_logprob, mass_error = (np.empty(n_rows) for _ in range(4))
    for start in range(0, n_rows, _BLOCK_ROWS):
        rows = slice(start, min(start + _BLOCK_ROWS, n_rows))
        block = matrix[rows].astype(np.float64)
        peak = block.max(axis=1, keepdims=True)
        low = np.maximum(block.min(axis=1, keepdims=True), peak - LOG_PROB_RANGE)
        log_norm = peak + np.log(np.exp(block - peak).sum(axis=1, keepdims=True))
        step = (peak - low) / _QMAX
        safe_step = np.where(step > 0, step, 1.0)
        codes = np.rint((block - low) / safe_step)
        codes[(block <= low) | (step == 0)] = 0
        quantized[rows] = np.clip(codes, 0, _QMAX)
        scale[rows] = step[:, 0]
        min_log_prob[rows] = (low - log_norm)[:, 0]
        picked = block[np.arange(block.shape[0]), target_ids[rows]]
        target_logprob[rows] = picked - log_norm[:, 0]
        exact = block - log_norm
        rounded = codes * step + (low - log_norm)
        kept = rounded > LOG_PROB_FLOOR
        mass_error[rows] = np.where(kept, np.exp(rounded) - np.exp(exact), 0.0).sum(axis=1)
    top1 = matrix.argmax(axis=1).astype(np.int64)
    return QuantizedReference(quantized, scale, min_log_prob, target_logprob, top1, mass_error)


# ---------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class CacheHeader:
    key: str
    n_ctx: int
    n_vocab: int
    n_windows: int
    bos_id: int | None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        fields = {"format": FORMAT_VERSION, "log_prob_range": LOG_PROB_RANGE, **self.__dict__}
        return json.dumps(fields, sort_keys=True, default=str).encode()


class ReferenceCacheWriter:
    """Appends windows, in order, to a cache file being written."""

    def __init__(self, stream: BinaryIO, header: CacheHeader, plan: WindowPlan) -> None:
        self._stream = stream
        self._header = header
        self._plan = plan
        self._written = 0
        encoded = header.to_json()
        stream.write(_MAGIC + struct.pack("<I", len(encoded)) + encoded)
        stream.write(plan.stream_token_ids.astype("<i4").tobytes())

    @property
    def windows_written(self) -> int:
        return self._written

    def add_window(self, scored_logits: ArrayLike) -> QuantizedReference:
        """Store the next window's scored rows; returns them in cached form, ready to score."""
        if self._written >= len(self._plan):
            raise ValidationError(f"the plan has only {len(self._plan)} windows")
        window = self._plan.windows[self._written]
        logits = as_logit_matrix(scored_logits, "reference logits")
        if logits.shape[1] != self._header.n_vocab:
            raise ValidationError(
                f"reference logits have {logits.shape[1]} columns, the cache expects "
                f"{self._header.n_vocab}"
            )
        rows = quantize_reference(logits, window.targets)
        write = self._stream.write
        write(_WINDOW_MARK + struct.pack("<II", window.index, len(rows)))
        for values, dtype in zip(_row_columns(rows), _COLUMN_DTYPES):
            write(values.astype(dtype).tobytes())
        for row in rows.quantized:
            packed = zlib.compress(row.astype("<u2").tobytes(), 1)
            write(struct.pack("<I", len(packed)) + packed)
        self._written += 1
        return rows

    def close(self) -> None:
        if self._written != len(self._plan):
            raise ValidationError(
                f"reference cache incomplete: {self._written} of {len(self._plan)} windows"
            )
        self._stream.write(_END_MARK + struct.pack("<I", self._written))


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class CachedReference:
    """A complete cache file: its header and stream tokens in memory, rows read on demand."""

    path: Path
    header: CacheHeader
    stream_token_ids: NDArray[np.int32]
    _rows_offset: int

    def plan(self) -> WindowPlan:
        """The window plan the cached rows belong to."""
        return plan_windows(self.stream_token_ids, self.header.n_ctx, bos_id=self.header.bos_id)

    def iter_windows(self) -> Iterator[QuantizedReference]:
        """The windows' rows, one window in memory at a time."""
        with open(self.path, "rb") as stream:
            stream.seek(self._rows_offset)
            for index in range(self.header.n_windows):
                yield self._read_window(stream, index)
            if stream.read(8) != _END_MARK + struct.pack("<I", self.header.n_windows):
                raise self._damaged("missing end marker")

    def _read_window(self, stream: BinaryIO, index: int) -> QuantizedReference:
        mark, stored_index, n_rows = struct.unpack("<4sII", _read_exact(stream, 12, self.path))
        if mark != _WINDOW_MARK or stored_index != index:
            raise self._damaged(f"window {index} not where expected")
        columns = [np.frombuffer(_read_exact(stream, 8 * n_rows, self.path), dtype=dtype)
                   for dtype in _COLUMN_DTYPES]
        quantized = np.empty((n_rows, self.header.n_vocab), dtype=np.uint16)
        for row in range(n_rows):
            (size,) = struct.unpack("<I", _read_exact(stream, 4, self.path))
            try:
                raw = zlib.decompress(_read_exact(stream, size, self.path))
                quantized[row] = np.frombuffer(raw, dtype="<u2")
            except (zlib.error, ValueError) as exc:
                raise self._damaged(f"window {index} row {row}: {exc}") from exc
        scale, min_log_prob, target_logprob, mass_error = (
            columns[i].astype(np.float64) for i in (0, 1, 2, 4)
        )
        top1 = columns[3].astype(np.int64)
        return QuantizedReference(
            quantized, scale, min_log_prob, target_logprob, top1, mass_error
        )

    def _damaged(self, detail: str) -> ValidationError:
        return ValidationError(f"reference cache {self.path} is damaged ({detail}); delete it")


class ReferenceCache:
    """A directory of cache files named by their key."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path_for(self, key: str) -> Path:
        return self.directory / f"{key[:40]}{_SUFFIX}"

    def load(self, key: str) -> CachedReference | None:
        """The cached reference for ``key``; ``None`` if absent, stale or unreadable."""
        path = self.path_for(key)
        try:
            with open(path, "rb") as stream:
                return _read_header(path, stream, key)
        except (OSError, ValueError, KeyError, TypeError, struct.error, ValidationError):
            return None

    @contextlib.contextmanager
    def create(
        self, key: str, plan: WindowPlan, n_vocab: int, settings: Mapping[str, Any] | None = None
    ) -> Iterator[ReferenceCacheWriter]:
        """Write a cache file; it appears only if every window of ``plan`` was added."""
        header = CacheHeader(key, plan.n_ctx, n_vocab, len(plan), plan.bos_id, dict(settings or {}))
        with atomic_path(self.path_for(key)) as tmp, open(tmp, "wb") as stream:
            writer = ReferenceCacheWriter(stream, header, plan)
            yield writer
            writer.close()


_COLUMN_DTYPES = ("<f8", "<f8", "<f8", "<i8", "<f8")


def _row_columns(rows: QuantizedReference) -> tuple[NDArray, ...]:
    return (rows.scale, rows.min_log_prob, rows.target_logprob, rows.top1, rows.mass_error)


def _read_header(path: Path, stream: BinaryIO, key: str) -> CachedReference | None:
    if stream.read(8) != _MAGIC:
        return None
    (length,) = struct.unpack("<I", stream.read(4))
    fields = json.loads(stream.read(length))
    if fields.get("format") != FORMAT_VERSION or fields.get("key") != key:
        return None
    header = CacheHeader(
        key=fields["key"], n_ctx=int(fields["n_ctx"]), n_vocab=int(fields["n_vocab"]),
        n_windows=int(fields["n_windows"]), bos_id=fields["bos_id"], settings=fields["settings"],
    )
    n_tokens = header.n_windows * header.n_ctx
    tokens = np.frombuffer(_read_exact(stream, 4 * n_tokens, path), dtype="<i4").astype(np.int32)
    return CachedReference(path, header, tokens, stream.tell())


def _read_exact(stream: BinaryIO, size: int, path: Path) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValidationError(f"reference cache {path} is truncated; delete it")
    return data
