"""Reading, encoding and writing at the same time, in bounded memory: the one write path of
``convert`` (the text GGUF and the projector) and ``quantize``.

A reader thread walks the tensors in output order and cuts each into pieces of whole rows
(a few MiB of float32). Every piece goes to a pool of kernel threads as soon as it is cut:
pieces to quantize are read on the reader thread and encoded by a ggml kernel in the pool;
pieces kept as the input stores them (all of them for ``convert``, whose inputs already encode
each row as the file holds it) are made in the pool too. The futures travel, in order, through a
bounded queue to the writer (the caller), which waits for each piece in turn and writes it.
So the kernels never wait for a tensor boundary, the reader runs at most ``depth`` pieces ahead,
and memory stays at ``depth`` pieces whatever the size of the model (the 2-billion-value PLE
table included).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
from gguf import GGMLQuantizationType as GGMLType
from gguf import GGUFValue

from gemma3n_gguf.core.errors import Gemma3nGGUFError, QuantizationError
from gemma3n_gguf.core.gguf_write import Progress, SizedTensor, write_gguf
from gemma3n_gguf.core.ggml import MIN_CHUNK_VALUES, quantize_rows
from gemma3n_gguf.engine.inputs import QuantizeInput
from gemma3n_gguf.engine.kv import install_kv

PIECE_BYTES = 4 << 20  # float32 bytes per piece: ~0.1 s of a k-quant kernel, ~1% of a queue's worth
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class TensorJob(SizedTensor):
    """One output tensor: what the writer needs (name, shape, qtype, nbytes) and how to make it."""

    name: str
    shape: tuple[int, ...]  # numpy order, as the writer takes it (see fileplan.PlannedOutput.written_shape)
    qtype: GGMLType
    convert: bool  # True: the input's float32 values go through a kernel; False: its stored bytes are copied
    imatrix: np.ndarray | None = None


class _End:
    """Marks the end of one tensor's pieces."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _raise_typed(job: TensorJob, error: BaseException, step: str) -> NoReturn:
    """Our own errors as they are; anything else named after the tensor it struck."""
    if isinstance(error, (Gemma3nGGUFError, KeyboardInterrupt, SystemExit)):
        raise error
    raise QuantizationError(f"{step} {job.name} failed: {error}") from error


def _result(job: TensorJob, piece: Future) -> np.ndarray:
    try:
        return piece.result()
    except BaseException as exc:  # re-raised typed
        _raise_typed(job, exc, "encoding")


class WritePipeline:
    """The threaded reader -> kernels -> writer of every GGUF written from a model input.

    Use as a context manager; call :meth:`pieces` for each job, in job order."""

    def __init__(self, source: QuantizeInput, jobs: Sequence[TensorJob], threads: int,
                 piece_bytes: int = PIECE_BYTES, depth: int | None = None):
        self.source = source
        self.jobs = list(jobs)
        self.threads = threads
        self.piece_bytes = piece_bytes
        self._queue: queue.Queue = queue.Queue(maxsize=depth or 4 * threads + 2)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gemma3n-encode")
        self._reader = threading.Thread(target=self._read_all, name="gemma3n-read", daemon=True)

    def __enter__(self) -> WritePipeline:
        self._reader.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        while self._reader.is_alive():  # unblock a reader waiting for queue space
            self._drain()
            self._reader.join(timeout=_POLL_SECONDS)
        self._drain()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def pieces(self, job: TensorJob) -> Iterator[np.ndarray]:
        """The output bytes of ``job``, piece by piece."""
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                _raise_typed(job, item.error, "reading")
            yield _result(job, item)

    # -- the reader thread ----------------------------------------------------------------------

    def _read_all(self) -> None:
        try:
            for job in self.jobs:
                for start, stop in self._spans(job):
                    if self._stop.is_set():
                        return
                    self._put(self._piece(job, start, stop))
                self._put(_End())
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(_Failed(exc))

    def _piece(self, job: TensorJob, start: int, stop: int) -> Future:
        if not job.convert:
            return self._pool.submit(self.source.stored, job.name, start, stop)
        rows = self.source.values(job.name, start, stop)
        return self._pool.submit(quantize_rows, rows, job.qtype, job.imatrix, 1)

    def _spans(self, job: TensorJob) -> Iterator[tuple[int, int]]:
        n_units, unit_values = self.source.units(job.name)
        # whole rows, at least ggml's minimum chunk, about piece_bytes of float32
        step = max(1, math.ceil(MIN_CHUNK_VALUES / max(1, unit_values)), self.piece_bytes // (4 * max(1, unit_values)))
        for start in range(0, n_units, step):
            yield start, min(n_units, start + step)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Future):
                item.cancel()


def write_through_pipeline(dest: Path, arch: str, kv: Mapping[str, GGUFValue], source: QuantizeInput,
                           jobs: Sequence[TensorJob], threads: int, on_progress: Progress | None = None) -> Path:
    """Write ``jobs`` of ``source`` with the key-values ``kv`` to ``dest``, atomically."""
    with WritePipeline(source, jobs, threads) as pipeline:
        return write_gguf(dest, arch, lambda writer: install_kv(writer, kv), jobs, pipeline.pieces, on_progress)
