"""tiny-e4b checkpoints (E4B's 35-layer layout) and every official slice of one, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma3n_gguf.fixtures import make_checkpoint


@pytest.fixture(scope="session")
def tiny_e4b(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-e4b", "tiny-e4b", seed=3)


@pytest.fixture(scope="session")
def tiny_e4b_google(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-e4b-google", "tiny-e4b", seed=3, saving="google")


@pytest.fixture(scope="session")
def official_slices(tiny_e4b, tmp_path_factory):
    """``get(slug)`` -> (HF slice directory, f32 GGUF, SliceResult of the GGUF), written once each."""
    from gemma3n_gguf.slice import WriteOptions, slice_model

    out = tmp_path_factory.mktemp("slices")
    made: dict[str, tuple] = {}

    def get(slug: str):
        if slug not in made:
            hf = slice_model(tiny_e4b, out / slug, config=slug)
            gguf = slice_model(tiny_e4b, out / f"{slug}.gguf", config=slug, options=WriteOptions(outtype="f32"))
            made[slug] = (hf.path, gguf.path, gguf)
        return made[slug]

    return get


@pytest.fixture(scope="session")
def patched_runtime() -> Path:
    """The patched llama.cpp libraries, from the cache the install step (.ci/run) builds once."""
    from gemma3n_gguf.runtime.build import build_runtime

    return build_runtime(fetch=False)
