"""Shared fixtures: tiny Gemma 3n checkpoints built once per session, and their GGUFs.

Every fixture is built by the project's own factory and converter; nothing is downloaded
and nothing is mocked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the two cores: torch keeps to one thread each, and an idle OpenMP thread
    # sleeps instead of spinning on a core the other worker needs. Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gemma3n_gguf.fixtures import make_checkpoint

pytest_plugins = ["mm_fixtures"]  # the multimodal (tiny-mm) fixtures


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``--dist loadgroup``), every test directory, and every test file at the top,
    runs on one worker, so the session fixtures of a directory's conftest are built once."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(root).parts
        item.add_marker(pytest.mark.xdist_group(parts[0] if len(parts) > 1 else Path(parts[0]).stem))


@pytest.fixture(scope="session")
def tiny_text_checkpoint(tmp_path_factory) -> Path:
    """tiny-text saved the transformers-5 way (no K/V for KV-shared layers)."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-text", "tiny-text", seed=0)


@pytest.fixture(scope="session")
def tiny_text_google_checkpoint(tmp_path_factory) -> Path:
    """tiny-text saved the way Google's releases are (K/V kept, 4.5x config keys)."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-text-google", "tiny-text", seed=0, saving="google")


def run_wide_checkpoint(tmp_path_factory, preset: str) -> Path:
    """``preset`` (seed 0) built once for the whole run, not once per pytest-xdist worker: the workers'
    base temporary directories share a parent, and a lock makes the first worker build it while another
    that needs it waits. Only for checkpoints no test modifies."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out = root / "run-wide" / preset
    out.parent.mkdir(exist_ok=True)
    with open(out.parent / f"{preset}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_dir():  # make_checkpoint renames a finished directory into place
            make_checkpoint(out, preset, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_mm_300m_checkpoint(tmp_path_factory) -> Path:
    """tiny-mm with timm's full mobilenetv5_300m_enc (294 M random weights, ~11 s to build): read by the
    golden outputs and the full-layout parity test, which may run on different workers."""
    return run_wide_checkpoint(tmp_path_factory, "tiny-mm-300m")


def gguf_factory(checkpoint: Path, tmp_path_factory):
    """``get(outtype)``: ``convert --outtype`` of ``checkpoint``, made once per type."""
    from gemma3n_gguf.convert import convert

    made: dict[str, Path] = {}

    def get(outtype: str) -> Path:
        if outtype not in made:
            out = tmp_path_factory.mktemp("gguf") / f"{checkpoint.name}-{outtype}.gguf"
            made[outtype] = convert(checkpoint, out, outtype=outtype).path
        return made[outtype]

    return get


@pytest.fixture(scope="session")
def tiny_text_gguf_factory(tiny_text_checkpoint, tmp_path_factory):
    return gguf_factory(tiny_text_checkpoint, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_text_f32_gguf(tiny_text_gguf_factory) -> Path:
    return tiny_text_gguf_factory("f32")


PARITY_TOKENS = 400


@pytest.fixture(scope="session")
def parity_ids():
    """BOS then random text-vocabulary ids: long enough to cross the 64-token sliding window."""
    import numpy as np

    rng = np.random.default_rng(1234)
    return np.concatenate([[2], rng.integers(10, 1024, PARITY_TOKENS - 1)]).astype(np.int64)


@pytest.fixture(scope="session")
def tiny_text_reference_logits(tiny_text_checkpoint, parity_ids):
    """transformers (fp32) logits of tiny-text on ``parity_ids``: the reference."""
    from gemma3n_gguf.reference.runners import TransformersRunner

    return next(TransformersRunner(tiny_text_checkpoint).iter_window_logits([parity_ids]))


def llama_logits(gguf_path, ids):
    from gemma3n_gguf.reference.llama_runner import LlamaCppRunner

    with LlamaCppRunner(gguf_path, n_ctx=512) as runner:
        return next(runner.iter_window_logits([ids]))
