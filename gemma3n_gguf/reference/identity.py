"""Which checkpoint is this? Content identities of an HF checkpoint directory, for cache keys.

:func:`checkpoint_content_hash` is the identity the reference cache and baselines key on: the
SHA-256 of every byte of ``config.json``, the index and every ``*.safetensors`` file, so two
checkpoints that differ in one tensor byte never share a cached reference. Reading a 10 GB
checkpoint takes seconds, so each file's digest is memoised in a small JSON file keyed by the
file's real path, size, mtime_ns, ctime_ns (which no tool can set back after an in-place edit)
and inode, and re-used only if the file's sampled digest (16 evenly spaced 64 KiB samples)
still matches: the quick pre-check.

:func:`checkpoint_fingerprint` is that quick identity alone (headers plus samples), a few
milliseconds on any size; a changed byte between samples goes unnoticed, so nothing caches on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.core.errors import CheckpointError, Gemma3nGGUFError

_SAMPLES_PER_FILE = 16
_SAMPLE_BYTES = 64 * 1024
_READ_BYTES = 8 * 1024 * 1024
MEMO_VERSION = 1


def identity_files(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """The files whose bytes define the model: config, index(es) and weight shards."""
    root = Path(checkpoint_dir)
    config = root / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{root} has no config.json: not a Hugging Face checkpoint")
    weight_files = sorted(root.glob("*.safetensors"))
    if not weight_files:
        raise CheckpointError(f"{root} has no *.safetensors weight files")
    return [config, *sorted(root.glob("*.safetensors.index.json")), *weight_files]


def checkpoint_content_hash(checkpoint_dir: str | os.PathLike[str], memo: str | os.PathLike[str] | None = None) -> str:
    """Hex SHA-256 over the names and full contents of :func:`identity_files`.

    ``memo`` is the JSON file of per-file digests (default: under ``$XDG_CACHE_HOME``).
    """
    known = DigestMemo(Path(memo) if memo is not None else default_memo_path())
    digest = hashlib.sha256(b"gemma3n-gguf checkpoint content v1\0")
    for path in identity_files(checkpoint_dir):
        digest.update(path.name.encode() + b"\0" + bytes.fromhex(known.file_sha256(path)))
    known.save()
    return digest.hexdigest()


def default_memo_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gemma3n-gguf" / "content-hashes.json"


class DigestMemo:
    """Per-file SHA-256 digests, trusted while a file's stat and sampled digest are unchanged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = _load_entries(path)
        self.computed = 0  # files read in full by this memo (a test's measure of re-use)
        self._dirty = False

    def file_sha256(self, path: Path) -> str:
        real = path.resolve()  # a hub snapshot's symlink and its blob share one entry
        try:
            with open(real, "rb") as stream:
                stat = os.fstat(stream.fileno())
                stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
                         "inode": stat.st_ino, "sampled": _sampled_digest(stream, stat.st_size)}
                entry = self.entries.get(str(real))
                if entry is not None and all(entry.get(k) == v for k, v in stamp.items()):
                    return str(entry["sha256"])
                stream.seek(0)
                full = hashlib.sha256()
                while chunk := stream.read(_READ_BYTES):
                    full.update(chunk)
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self.entries[str(real)] = stamp | {"sha256": full.hexdigest()}
        self.computed += 1
        self._dirty = True
        return full.hexdigest()

    def save(self) -> None:
        """Write the memo if it changed; entries of files that no longer exist are dropped."""
        if not self._dirty:
            return
        alive = {name: entry for name, entry in self.entries.items() if Path(name).exists()}
        # a memo is only a speed-up: an unwritable cache directory must not fail the run
        with contextlib.suppress(Gemma3nGGUFError):
            write_text_atomically(self.path, json.dumps({"version": MEMO_VERSION, "files": alive}, indent=1))
        self._dirty = False


def _load_entries(path: Path) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("version") != MEMO_VERSION:
        return {}
    files = document.get("files")
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def _sampled_digest(stream, size: int) -> str:
    digest = hashlib.sha256()
    span = max(size - _SAMPLE_BYTES, 0)
    for i in range(_SAMPLES_PER_FILE):
        stream.seek(span * i // (_SAMPLES_PER_FILE - 1))
        digest.update(stream.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def checkpoint_fingerprint(checkpoint_dir: str | os.PathLike[str], *, full: bool = False) -> str:
    """Hex sha256 of the config, index and weight headers plus samples (``full``: every byte)."""
    config, *others = identity_files(checkpoint_dir)
    digest = hashlib.sha256(b"gemma3n-gguf checkpoint fingerprint v1\0")
    for path in [config, *(p for p in others if p.name.endswith(".index.json"))]:
        _update_named(digest, path.name, path.read_bytes())
    for path in (p for p in others if p.suffix == ".safetensors"):
        digest.update(path.name.encode() + b"\0")
        _hash_safetensors(digest, path, full=full)
    return digest.hexdigest()


def _update_named(digest: "hashlib._Hash", name: str, data: bytes) -> None:
    digest.update(name.encode() + b"\0" + struct.pack("<Q", len(data)) + data)


def _hash_safetensors(digest: "hashlib._Hash", path: Path, *, full: bool) -> None:
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            digest.update(struct.pack("<Q", size))
            if full or size <= _SAMPLES_PER_FILE * _SAMPLE_BYTES:
                while chunk := stream.read(_READ_BYTES):
                    digest.update(chunk)
                return
            (header_len,) = struct.unpack("<Q", stream.read(8))
            digest.update(stream.read(min(header_len, size - 8)))
            data_start = 8 + header_len
            span = max(size - data_start - _SAMPLE_BYTES, 0)
            for i in range(_SAMPLES_PER_FILE):
                stream.seek(data_start + span * i // (_SAMPLES_PER_FILE - 1))
                digest.update(stream.read(_SAMPLE_BYTES))
    except (OSError, struct.error) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
