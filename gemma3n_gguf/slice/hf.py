"""Write a slice as a Hugging Face checkpoint transformers loads (what MatFormer Lab writes,
with every per-layer list of the config rebuilt).

The tensors stream from the original shards in row chunks, in their stored dtype (bf16 words pass
through untouched), into sharded safetensors with an index. The directory is built beside the
destination and renamed into place, so a failure leaves nothing under the final name.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gemma3n_gguf.core.errors import ConversionError
from gemma3n_gguf.core.gguf_write import chunked_rows
from gemma3n_gguf.fixtures.shards import INDEX_NAME, TensorSpec, write_sharded
from gemma3n_gguf.slice.checkpoint import SlicedCheckpoint

SHARD_BYTES = 4 << 30  # what save_pretrained uses for Gemma 3n (max_shard_size 5GB rounds to ~4 GiB shards)
_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt")


def write_hf_slice(sliced: SlicedCheckpoint, out_dir: Path, shard_bytes: int = SHARD_BYTES) -> Path:
    """The sliced checkpoint in ``out_dir`` (which must not exist or be empty)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConversionError(f"{out_dir} exists and is not an empty directory; choose another output with -o")
    if out_dir.resolve() == sliced.directory.resolve():
        raise ConversionError(f"the output {out_dir} is the input checkpoint; choose another output with -o")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _copy_side_files(sliced.directory, work)
        specs = [TensorSpec(name, ref.shape, ref.dtype) for name, ref in sliced.tensors.items()]
        write_sharded(work, specs, lambda spec: _raw_chunks(sliced, spec), shard_bytes)
        (work / "config.json").write_text(json.dumps(sliced.config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        work.rename(out_dir)
        out_dir.chmod(0o755)  # mkdtemp made it private
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out_dir


def _copy_side_files(source: Path, work: Path) -> None:
    """Tokenizer, generation and processor files: everything but weights, the index and config."""
    for path in sorted(source.iterdir()):
        if path.is_file() and path.suffix not in _WEIGHT_SUFFIXES and path.name not in (INDEX_NAME, "config.json"):
            shutil.copy2(path, work / path.name)


def _raw_chunks(sliced: SlicedCheckpoint, spec: TensorSpec) -> Iterator[np.ndarray]:
    if not spec.shape:
        yield sliced.read_raw(spec.name)
        return
    row_bytes = spec.nbytes // max(1, spec.shape[0])
    for start, stop in chunked_rows(spec.shape[0], row_bytes):
        yield sliced.read_raw(spec.name, start, stop)
