"""Checkpoints of the reference tests, one per tiny preset, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma3n_gguf.fixtures import make_checkpoint


@pytest.fixture(scope="session")
def tiny_text_256_checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-text-256", "tiny-text-256", seed=0)
