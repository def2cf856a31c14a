"""A cheap, content-based identity of an HF checkpoint directory, for cache keys.

Hashes ``config.json``, every ``*.safetensors.index.json``, and for each ``*.safetensors``
file its size, its JSON header (tensor names, dtypes, shapes, offsets) and evenly spaced
samples of its data. The config and index alone would not do: a base and an instruct
checkpoint (or any fine-tune) share both. Sampling keeps a 16 GB checkpoint at a few
milliseconds; a tampered byte between samples goes unnoticed, which ``full=True`` closes
at the price of reading every byte.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from gemma3n_gguf.core.errors import CheckpointError
from gemma3n_gguf.core.safetensors import read_shard_header

_SAMPLES_PER_FILE = 16
_SAMPLE_BYTES = 64 * 1024
_READ_BYTES = 8 * 1024 * 1024


def checkpoint_fingerprint(checkpoint_dir: str | os.PathLike[str], *, full: bool = False) -> str:
    """Hex sha256 identifying the checkpoint's config and weights."""
    root = Path(checkpoint_dir)
    config = root / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{root} has no config.json: not a Hugging Face checkpoint")
    weight_files = sorted(root.glob("*.safetensors"))
    if not weight_files:
        raise CheckpointError(f"{root} has no *.safetensors weight files")
    digest = hashlib.sha256(b"gemma3n-gguf checkpoint fingerprint v1\0")
    for path in [config, *sorted(root.glob("*.safetensors.index.json"))]:
        _update_named(digest, path.name, path.read_bytes())
    for path in weight_files:
        digest.update(path.name.encode() + b"\0")
        _hash_safetensors(digest, path, full=full)
    return digest.hexdigest()


def _update_named(digest: "hashlib._Hash", name: str, data: bytes) -> None:
    digest.update(name.encode() + b"\0" + struct.pack("<Q", len(data)) + data)


def _hash_safetensors(digest: "hashlib._Hash", path: Path, *, full: bool) -> None:
    header = read_shard_header(path)  # a shard the converter would refuse has no identity either
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            digest.update(struct.pack("<Q", size))
            if full or size <= _SAMPLES_PER_FILE * _SAMPLE_BYTES:
                while chunk := stream.read(_READ_BYTES):
                    digest.update(chunk)
                return
            digest.update(header.raw)
            span = max(size - header.data_start - _SAMPLE_BYTES, 0)
            for i in range(_SAMPLES_PER_FILE):
                stream.seek(header.data_start + span * i // (_SAMPLES_PER_FILE - 1))
                digest.update(stream.read(_SAMPLE_BYTES))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
