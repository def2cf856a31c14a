"""Run a benchmark's child process inside a memory cgroup, so a memory bound is enforced by the
kernel instead of read off a high-water mark.

Why: a GGUF that llama.cpp maps is charged to RSS page by page as it is touched, and on a machine
with free memory the kernel never takes those clean file pages back, so an unconfined peak RSS says
how much memory was *available*, not how much the run *needs*. Inside a cgroup whose limit is the
bound, the kernel reclaims file pages (they are re-read from disk when touched again) and kills the
run if its anonymous memory alone does not fit. A run that exits 0 there fits the bound.

Page cache is charged to the cgroup of the process that first reads a page. Files already cached
by an earlier step (the GGUF a quantize run just wrote, a checkpoint warmed for timing, the shared
libraries of torch and llama.cpp any earlier Python loaded) would be mapped without being charged,
and would count in the run's RSS beyond the limit; so their cached pages are dropped first
(``evict_from_page_cache``). Pages that another live process has mapped cannot be dropped: run
nothing else that loads the same libraries meanwhile.

cgroup v2 (a unified hierarchy with the memory controller) or v1 (the ``memory`` hierarchy); either
needs write access to the hierarchy, which containers often withhold: then ``MemoryCgroup`` raises
``ConfinementUnavailable`` with the reason.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

_V2_ROOT = Path("/sys/fs/cgroup")
_V1_ROOT = Path("/sys/fs/cgroup/memory")
_counter = itertools.count()

# file names per cgroup version: limit, peak usage, where the OOM-kill count is
_FILES = {
    2: {"limit": "memory.max", "peak": "memory.peak", "events": "memory.events"},
    1: {"limit": "memory.limit_in_bytes", "peak": "memory.max_usage_in_bytes", "events": "memory.oom_control"},
}


class ConfinementUnavailable(RuntimeError):
    """This machine does not let the bench create a memory cgroup."""


def _hierarchy() -> tuple[int, Path]:
    controllers = _V2_ROOT / "cgroup.controllers"
    if controllers.is_file() and "memory" in controllers.read_text().split():
        return 2, _V2_ROOT
    if (_V1_ROOT / "memory.limit_in_bytes").is_file():
        return 1, _V1_ROOT
    raise ConfinementUnavailable("no memory cgroup hierarchy under /sys/fs/cgroup")


class MemoryCgroup:
    """A fresh memory cgroup limited to ``limit_bytes``; ``enter`` (run in the child between fork
    and exec) moves the calling process into it. Use as a context manager: the cgroup is removed
    on exit, once the processes in it have ended."""

    def __init__(self, limit_bytes: int):
        self.version, root = _hierarchy()
        self.limit_bytes = limit_bytes
        self.path = root / f"gemma3n-bench-{os.getpid()}-{next(_counter)}"
        self._files = _FILES[self.version]
        try:
            self.path.mkdir()
            (self.path / self._files["limit"]).write_text(str(limit_bytes))
        except OSError as exc:
            self.close()
            raise ConfinementUnavailable(f"cannot create a memory cgroup at {self.path}: {exc}") from exc

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    @property
    def peak_bytes(self) -> int | None:
        """The most memory (anonymous and page cache) ever charged to the cgroup, where the kernel
        keeps that figure (v1; v2 since Linux 5.19)."""
        peak = self.path / self._files["peak"]
        return int(peak.read_text()) if peak.is_file() else None

    @property
    def oom_kills(self) -> int:
        for line in (self.path / self._files["events"]).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass  # already gone, or never made; a leftover empty cgroup costs nothing

    def __enter__(self) -> MemoryCgroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def evict_from_page_cache(paths: list[Path]) -> None:
    """Drop the cached pages of ``paths`` (files, or every file under a directory) so that the next
    process to read them is charged for them. Everything is written back first with one sync: the
    kernel keeps dirty pages cached (a GGUF or checkpoint just written), and one sync of the whole
    system costs far less than a flush per file of the Python installation."""
    os.sync()
    for path in paths:
        files = (file for file in path.rglob("*") if file.is_file()) if path.is_dir() else [path]
        for file in files:
            _drop_cached_pages(file)


def _drop_cached_pages(file: Path) -> None:
    try:
        fd = os.open(file, os.O_RDONLY)
    except OSError:
        return  # unreadable or missing: not something the run reads either
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
