"""The imatrix accumulated layer by layer on the streamed reference equals the in-memory one."""

from __future__ import annotations

import numpy as np

from gemma3n_gguf.quantize.calibrate import compute_imatrix

from .conftest import IMATRIX_CHUNKS, IMATRIX_CTX


def test_streamed_imatrix_equals_in_memory(tiny256_checkpoint, calibration_text):
    text = calibration_text.read_text(encoding="utf-8")
    runs = {mode: compute_imatrix(tiny256_checkpoint, text, dataset="calibration.txt", n_ctx=IMATRIX_CTX,
                                  chunks=IMATRIX_CHUNKS, reference_mode=mode)
            for mode in ("memory", "streamed")}
    memory, streamed = runs["memory"], runs["streamed"]
    assert (memory.reference_mode, streamed.reference_mode) == ("memory", "streamed")
    assert streamed.peak_rss_bytes > 0
    assert streamed.shared_kv_skipped == memory.shared_kv_skipped == ["blk.20.attn_k.weight", "blk.20.attn_v.weight"]
    assert streamed.n_windows == memory.n_windows == IMATRIX_CHUNKS
    expected, got = memory.imatrix, streamed.imatrix
    assert sorted(got.entries) == sorted(expected.entries)
    assert len(expected.entries) == 21 * 14 - 2  # 14 matrices a layer, no K/V in the shared layer 20
    assert got.chunk_count == expected.chunk_count
    for name, entry in expected.entries.items():
        np.testing.assert_array_equal(got.entries[name].counts, entry.counts)
        np.testing.assert_allclose(got.entries[name].sums, entry.sums, rtol=1e-6, err_msg=name)
