"""The read -> quantize -> write pipeline: bounded read-ahead, order, errors, clean shutdown."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gemma3n_gguf.core.errors import QuantizationError
from gguf import GGMLQuantizationType as T

from gemma3n_gguf.core.ggml import quantize_rows
from gemma3n_gguf.engine.pipeline import WritePipeline, TensorJob

NE0 = 256


class FakeInput:
    """Tensors of random rows; counts the rows handed out and can fail on demand."""

    def __init__(self, rows: dict[str, int], fail_at: tuple[str, int] | None = None):
        self.rows = rows
        self.fail_at = fail_at
        self.read_units = 0
        self.tensors: dict[str, np.ndarray] = {}
        self.lock = threading.Lock()

    def units(self, name: str) -> tuple[int, int]:
        return self.rows[name], NE0

    def data(self, name: str, start: int, stop: int) -> np.ndarray:
        if name not in self.tensors:
            rng = np.random.default_rng(sum(map(ord, name)))
            self.tensors[name] = rng.normal(size=(self.rows[name], NE0)).astype(np.float32)
        return self.tensors[name][start:stop].copy()

    def values(self, name: str, start: int, stop: int) -> np.ndarray:
        if self.fail_at is not None and name == self.fail_at[0] and start >= self.fail_at[1]:
            raise ValueError(f"cannot read {name} at row {start}")
        with self.lock:
            self.read_units += stop - start
        return self.data(name, start, stop)

    def stored(self, name: str, start: int, stop: int) -> np.ndarray:
        return self.values(name, start, stop).view(np.uint8)


def _jobs() -> list[TensorJob]:
    return [TensorJob("a", (4096, NE0), T.Q4_K, True), TensorJob("b", (300, NE0), T.F32, False),
            TensorJob("c", (2048, NE0), T.Q6_K, True)]


def test_pieces_come_in_order_and_equal_one_kernel_call():
    source = FakeInput({"a": 4096, "b": 300, "c": 2048})
    jobs = _jobs()
    with WritePipeline(source, jobs, threads=2, piece_bytes=64 * NE0 * 4) as pipeline:
        outputs = {job.name: b"".join(p.tobytes() for p in pipeline.pieces(job)) for job in jobs}
    for job in jobs:
        rows = source.data(job.name, 0, source.rows[job.name])
        expected = quantize_rows(rows, job.qtype).tobytes() if job.convert else rows.tobytes()
        assert outputs[job.name] == expected, job.name
        assert len(outputs[job.name]) == job.nbytes


def test_reader_stays_a_bounded_number_of_pieces_ahead():
    rows_per_piece, depth = 64, 3
    source = FakeInput({"a": 4096, "b": 300, "c": 2048})
    job = _jobs()[0]
    with WritePipeline(source, [job], threads=2, piece_bytes=rows_per_piece * NE0 * 4, depth=depth) as pipeline:
        pieces = pipeline.pieces(job)
        next(pieces)
        time.sleep(0.5)  # a slow writer: the reader must wait, not read the whole tensor
        ahead = source.read_units // rows_per_piece
        assert ahead <= depth + 2, f"the reader ran {ahead} pieces ahead"
        assert sum(1 for _ in pieces) == 4096 // rows_per_piece - 1


def test_a_read_error_reaches_the_writer():
    source = FakeInput({"a": 4096, "b": 300, "c": 2048}, fail_at=("c", 1024))
    jobs = _jobs()
    with WritePipeline(source, jobs, threads=2, piece_bytes=64 * NE0 * 4) as pipeline:
        for job in jobs[:2]:
            for _ in pipeline.pieces(job):
                pass
        # an untyped read error becomes a QuantizationError naming the tensor (one line, no traceback)
        with pytest.raises(QuantizationError, match="reading c failed: cannot read c at row 1024"):
            for _ in pipeline.pieces(jobs[2]):
                pass


def test_leaving_early_stops_the_reader():
    source = FakeInput({"a": 4096, "b": 300, "c": 2048})
    jobs = _jobs()
    started = time.perf_counter()
    with WritePipeline(source, jobs, threads=2, piece_bytes=64 * NE0 * 4, depth=2) as pipeline:
        next(pipeline.pieces(jobs[0]))
        reader = pipeline._reader
    assert not reader.is_alive()
    assert time.perf_counter() - started < 5
    assert source.read_units < 4096 + 300 + 2048
