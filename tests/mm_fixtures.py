"""Multimodal test fixtures: the tiny-mm checkpoint, its GGUFs, and damaged copies of it.

Registered for every test module by ``pytest_plugins`` in tests/conftest.py; the expensive
builds also go through a session-wide cache keyed by what they build.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from gemma3n_gguf.convert import convert
from gemma3n_gguf.convert.projector.convert import MmprojResult, convert_mmproj
from gemma3n_gguf.fixtures import make_checkpoint

_BUILT: dict[str, object] = {}


def _once(key: str, build: Callable[[], object]):
    if key not in _BUILT:
        _BUILT[key] = build()
    return _BUILT[key]


@pytest.fixture(scope="session")
def tiny_mm_checkpoint(tmp_path_factory) -> Path:
    """2 text layers at hidden 2048, the tiny MobileNet-V5 layout and a tiny audio tower."""
    return _once("tiny-mm", lambda: make_checkpoint(tmp_path_factory.mktemp("mm") / "tiny-mm", "tiny-mm", seed=0))


@pytest.fixture(scope="session")
def tiny_mm_mmproj(tiny_mm_checkpoint, tmp_path_factory) -> Callable[[str], MmprojResult]:
    """The tiny-mm projector converted once per --mmproj-type."""

    def get(mmproj_type: str) -> MmprojResult:
        out = lambda: tmp_path_factory.mktemp("mmproj") / f"mmproj-tiny-mm-{mmproj_type}.gguf"  # noqa: E731
        return _once(f"mmproj-{mmproj_type}",
                     lambda: convert_mmproj(tiny_mm_checkpoint, out(), mmproj_type=mmproj_type))

    return get


@pytest.fixture(scope="session")
def tiny_mm_text_gguf(tiny_mm_checkpoint, tmp_path_factory) -> Callable[[bool], Path]:
    """The tiny-mm text model at f32, with or without exact multimodal tokens."""

    def get(exact_mm_tokens: bool) -> Path:
        name = "exact" if exact_mm_tokens else "plain"
        out = lambda: tmp_path_factory.mktemp("text") / f"tiny-mm-{name}-f32.gguf"  # noqa: E731
        return _once(f"text-{name}",
                     lambda: convert(tiny_mm_checkpoint, out(), outtype="f32", exact_mm_tokens=exact_mm_tokens).path)

    return get


# -- damaged copies ---------------------------------------------------------------------


def linked_copy(src: Path, dst: Path) -> Path:
    """A copy whose files are hard links: instant, but files must be replaced, never
    rewritten in place (the helpers below do so)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.unlink()  # break the hard link before writing
    path.write_text(json.dumps(data, indent=2))


def drop_tensors(ckpt_dir: Path, doomed: Callable[[str], bool]) -> list[str]:
    """Remove every tensor whose name ``doomed`` accepts from the shards and the index."""
    from safetensors.numpy import load_file, save_file

    index_path = ckpt_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    dropped = sorted(n for n in index["weight_map"] if doomed(n))
    for shard in sorted({index["weight_map"][n] for n in dropped}):
        kept = {n: t for n, t in load_file(ckpt_dir / shard).items() if not doomed(n)}
        tmp = ckpt_dir / f".{shard}.tmp"
        save_file(kept, tmp, metadata={"format": "pt"})
        os.replace(tmp, ckpt_dir / shard)
    edit_json(index_path, lambda data: [data["weight_map"].pop(n) for n in dropped])
    return dropped


def scale_tensor(ckpt_dir: Path, name: str, factor: float) -> None:
    """Multiply one checkpoint tensor by ``factor`` in place (its shard is replaced)."""
    from safetensors.numpy import load_file, save_file

    index = json.loads((ckpt_dir / "model.safetensors.index.json").read_text())
    shard = index["weight_map"][name]
    tensors = load_file(ckpt_dir / shard)
    tensors[name] = tensors[name] * factor
    tmp = ckpt_dir / f".{shard}.tmp"
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, ckpt_dir / shard)
