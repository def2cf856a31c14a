"""Atomic file output: write to a temporary sibling, fsync, then rename.

The temporary file is ``.<name>.<pid>.partial`` beside the destination. A failure or Ctrl-C
(or SIGTERM, which the CLI turns into an exit) inside the ``with`` block removes it at once and leaves the destination untouched, so no
half-written model ever appears under the final name. A run killed outright (SIGKILL, power
loss) cannot clean up: its ``.partial`` file stays, recognisable by that name, until the next
run writing into the same directory removes it, once the process it names is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from gemma3n_gguf.core.errors import ConversionError

PARTIAL_SUFFIX = ".partial"
# .NAME.PID.partial, or .NAME.PID-N.partial for a second write of one process to one NAME
_PARTIAL_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:-\d+)?\.partial$")
_FULL_DISK = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def partial_path(destination: Path, pid: int, attempt: int = 0) -> Path:
    """The temporary file a process ``pid`` writes ``destination`` through."""
    tag = str(pid) if attempt == 0 else f"{pid}-{attempt}"
    return destination.parent / f".{destination.name}.{tag}{PARTIAL_SUFFIX}"


def stale_partials(directory: Path) -> list[Path]:
    """Temporary files in ``directory`` left by runs whose process no longer exists."""
    stale = []
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            match = _PARTIAL_NAME.match(entry.name)
            if match and not _process_alive(int(match["pid"])):
                stale.append(entry)
    return stale


def remove_stale_partials(directory: Path) -> list[Path]:
    """Delete what :func:`stale_partials` finds; returns the files actually removed."""
    removed = []
    for path in stale_partials(directory):
        with contextlib.suppress(FileNotFoundError):  # another run may remove it first
            path.unlink()
            removed.append(path)
    return removed


def refuse_input_as_output(
    destination: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]],
    error: type[Exception] = ConversionError,
) -> None:
    """Raise ``error`` if ``destination`` is one of ``inputs`` (the same file, through any link).

    An input that is a directory (a checkpoint) stands for every file in it except GGUF files,
    which are earlier outputs that a new run may replace.
    """
    dest = Path(destination)
    if not dest.is_file():
        return
    for source in _expand_inputs(inputs):
        with contextlib.suppress(OSError):
            if os.path.samefile(dest, source):
                raise error(f"the output {dest} is an input of this run ({source}); "
                            "choose another output path with -o")


def _expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    for source in map(Path, inputs):
        if source.is_dir():
            yield from (p for p in sorted(source.iterdir()) if p.suffix.lower() != ".gguf")
        else:
            yield source


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; rename it into place on success."""
    dest = Path(destination)
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(parent)
        tmp = _create_partial(dest)
    except OSError as exc:
        raise ConversionError(f"cannot write to {parent}: {_explain(exc)}") from exc
    try:
        yield tmp
        _fsync(tmp)
        tmp.chmod(0o666 & ~_umask())  # created 0600; give the file normal permissions
        os.replace(tmp, dest)
        _fsync_dir(parent)
    except OSError as exc:  # disk full, destination is a directory, ...
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"cannot write {dest}: {_explain(exc)}; nothing was written") from exc
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


def _create_partial(dest: Path) -> Path:
    for attempt in range(1000):
        tmp = partial_path(dest, os.getpid(), attempt)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"too many temporary files for {dest.name}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OverflowError:
        return False
    return True


def _explain(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL_DISK:
        return f"{reason} (the disk is full or a file-size limit was reached; free space or write elsewhere)"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{reason} (a part of the path is a file, not a directory)"
    if exc.errno in _DENIED:
        return f"{reason} (the directory is read-only for this user; write elsewhere)"
    return reason


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
