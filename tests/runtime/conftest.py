"""The patched llama.cpp runtime, from the cache the install step (.ci/run) builds once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def patched_runtime() -> Path:
    """Fails (never skips) with the build command when the cache lacks the runtime of every patch."""
    from gemma3n_gguf.runtime.build import build_runtime

    return build_runtime(fetch=False)
