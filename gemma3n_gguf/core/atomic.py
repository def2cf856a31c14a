"""Atomic file output: write to a temporary sibling, fsync, then rename.

A failure or Ctrl-C inside the ``with`` block removes the temporary file and leaves the
destination untouched, so no half-written model ever appears under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gemma3n_gguf.core.errors import ConversionError


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it into place on success."""
    dest = Path(destination)
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=parent)
    except OSError as exc:
        raise ConversionError(f"cannot write to {parent}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync(tmp)
        tmp.chmod(0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, dest)
        _fsync_dir(parent)
    except OSError as exc:  # disk full, destination is a directory, ...
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write_text(destination: str | os.PathLike[str], encoding: str = "utf-8") -> Iterator:
    """Open a text stream whose content replaces ``destination`` only when the block succeeds."""
    with atomic_path(destination) as tmp, open(tmp, "w", encoding=encoding) as stream:
        yield stream


def write_text_atomically(destination: str | os.PathLike[str], text: str) -> None:
    with atomic_write_text(destination) as stream:
        stream.write(text)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
