"""This process's memory: what the machine has available, and the peak resident set of a phase.

Linux keeps the process's high-water mark of resident memory (``VmHWM``) and lets the process
reset it (``echo 5 > /proc/self/clear_refs``), so the peak of one phase is exact, not sampled.
Where the reset is refused, the peak is the process's lifetime peak (``ru_maxrss``), an upper bound.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MEMINFO = Path("/proc/meminfo")
_RESET_PEAK = "5"  # clear_refs: reset the peak RSS to the current RSS


@dataclass
class PeakMemory:
    """Filled in when the measured block ends."""

    peak_rss_bytes: int = 0
    exact: bool = False
    """True: the block's own peak; False: the process's lifetime peak (the reset was refused)."""


@contextlib.contextmanager
def measure_peak_rss() -> Iterator[PeakMemory]:
    """The peak resident memory of this process while the block runs."""
    result = PeakMemory()
    exact = _reset_peak()
    try:
        yield result
    finally:
        result.exact = exact
        result.peak_rss_bytes = _status_kib("VmHWM") * 1024 if exact else _lifetime_peak_bytes()


def available_memory_bytes() -> int:
    """What the kernel can give this process without swapping (``MemAvailable``)."""
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK)
        return _status_kib("VmHWM") > 0
    except OSError:
        return False


def _status_kib(field: str) -> int:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _lifetime_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
