"""tiny-text-256 fixtures: a checkpoint whose every matrix fills k-quant blocks, its GGUFs, an imatrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import gguf_factory
from gemma3n_gguf.fixtures import make_checkpoint

IMATRIX_CTX = 64
IMATRIX_CHUNKS = 3

_WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
          "every river under bright morning light and old stone bridges carry small carts of grain").split()


@pytest.fixture(scope="session")
def tiny256_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-text-256", "tiny-text-256", seed=0)


@pytest.fixture(scope="session")
def tiny256_gguf(tiny256_checkpoint, tmp_path_factory):
    """``convert --outtype T`` of tiny-text-256, made once per type."""
    return gguf_factory(tiny256_checkpoint, tmp_path_factory)


@pytest.fixture(scope="session")
def calibration_text(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    words = [_WORDS[i] for i in rng.integers(0, len(_WORDS), 3000)]
    path = tmp_path_factory.mktemp("calib") / "calibration.txt"
    path.write_text(" ".join(words) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny256_imatrix(tiny256_checkpoint, calibration_text, tmp_path_factory) -> Path:
    """An imatrix of tiny-text-256 made by our ``imatrix`` library function."""
    from gemma3n_gguf.quantize.calibrate import compute_imatrix
    from gemma3n_gguf.quantize.imatrix import write_imatrix_gguf

    result = compute_imatrix(tiny256_checkpoint, calibration_text.read_text(encoding="utf-8"),
                             dataset=str(calibration_text), n_ctx=IMATRIX_CTX, chunks=IMATRIX_CHUNKS)
    path = tmp_path_factory.mktemp("imatrix") / "imatrix.gguf"
    write_imatrix_gguf(path, result.imatrix)
    return path
