"""Run a command as a child process and measure it: wall time, peak RSS (total, anonymous,
file-backed) and the size of the file it wrote.

Memory: a monitor thread reads /proc/<pid>/status of the child and its descendants every
SAMPLE_SECONDS. The total peak is the kernel's own high-water mark, VmHWM (summed over the
processes of the tree, an upper bound when there are several). The kernel keeps no high-water
mark for the anonymous / file-backed split, so those are the largest sampled sums of RssAnon and
RssFile, and can miss a spike shorter than the interval. Not wait4's ru_maxrss: Linux carries
the parent's high-water mark over fork and exec into it, so a bench process that built a
checkpoint would be charged to every tool. Not psutil's memory_full_info: it parses smaps (slow
on a 10 GB mapping) and reports USS/PSS, not the split; psutil only lists the descendants.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from confine import MemoryCgroup

SAMPLE_SECONDS = 0.05
_STATUS_KEYS = {"VmHWM": "hwm", "RssAnon": "anon", "RssFile": "file"}


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_bytes: int
    returncode: int
    output_bytes: int | None = None
    peak_rss_anon_bytes: int = 0
    peak_rss_file_bytes: int = 0
    # set only for a run confined to a memory cgroup (confine.py)
    memory_limit_bytes: int | None = None
    cgroup_peak_bytes: int | None = None
    oom_kills: int | None = None

    @property
    def peak_rss_gib(self) -> float:
        return self.peak_rss_bytes / 2**30

    def record(self, role: str, repeat: int, **extra) -> dict:
        """One run as stored in a results file (harness.RUN_FIELDS); ``role`` is the stable key
        report.py finds the run by ("ours", "peer_convert", ...), the label what the table shows."""
        fields = asdict(self)
        if self.memory_limit_bytes is None:
            for name in ("memory_limit_bytes", "cgroup_peak_bytes", "oom_kills"):
                del fields[name]
        return {"tool": fields.pop("label"), "role": role, "repeat": repeat, "exit": fields.pop("returncode"),
                "wall_s": round(fields.pop("seconds"), 3), **fields, **extra}


def _memory_status(pid: int) -> dict[str, int]:
    """VmHWM, RssAnon and RssFile of one process in bytes (zeros once it has exited)."""
    sizes = {"hwm": 0, "anon": 0, "file": 0}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in _STATUS_KEYS:
                    sizes[_STATUS_KEYS[name]] = int(value.split()[0]) * 1024  # "1234 kB"
    except (FileNotFoundError, ProcessLookupError):
        pass
    return sizes


class PeakMemoryMonitor(threading.Thread):
    """Samples the process tree rooted at ``pid`` until ``stop()``."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_anon = self.peak_file = 0
        self._hwm: dict[int, int] = {}
        self._done = threading.Event()

    @property
    def peak_total(self) -> int:
        return sum(self._hwm.values())

    def _tree(self) -> list[int]:
        try:
            return [self.pid, *(child.pid for child in psutil.Process(self.pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def run(self) -> None:
        while not self._done.is_set():
            anon = file = 0
            for pid in self._tree():
                sizes = _memory_status(pid)
                anon, file = anon + sizes["anon"], file + sizes["file"]
                self._hwm[pid] = max(self._hwm.get(pid, 0), sizes["hwm"])
            self.peak_anon, self.peak_file = max(self.peak_anon, anon), max(self.peak_file, file)
            self._done.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_measured(label: str, cmd: list[str], log_path: str | None = None, env: dict | None = None,
                 output: Path | None = None, memory_limit: int | None = None,
                 cwd: Path | None = None) -> Measurement:
    """With ``output``, the size of the file the command wrote is recorded too. With
    ``memory_limit``, the command runs in a memory cgroup of that many bytes (confine.py; raises
    ConfinementUnavailable where the machine allows none)."""
    cgroup = MemoryCgroup(memory_limit) if memory_limit is not None else contextlib.nullcontext()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        with cgroup:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    preexec_fn=cgroup.enter if memory_limit is not None else None)
            monitor = PeakMemoryMonitor(proc.pid)
            monitor.start()
            _, status = os.waitpid(proc.pid, 0)
            seconds = time.perf_counter() - start
            monitor.stop()
            confinement = ({"memory_limit_bytes": memory_limit, "cgroup_peak_bytes": cgroup.peak_bytes,
                            "oom_kills": cgroup.oom_kills} if memory_limit is not None else {})
    finally:
        if log_path:
            log.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    written = output.stat().st_size if output is not None and output.exists() else None
    return Measurement(label, seconds, monitor.peak_total, proc.returncode, written,
                       monitor.peak_anon, monitor.peak_file, **confinement)
