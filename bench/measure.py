"""Run a command as a child process and measure its wall time and peak RSS (wait4 rusage)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_bytes: int
    returncode: int
    output_bytes: int | None = None

    @property
    def peak_rss_gib(self) -> float:
        return self.peak_rss_bytes / 2**30


def run_measured(label: str, cmd: list[str], log_path: str | None = None, env: dict | None = None,
                 output: Path | None = None) -> Measurement:
    """Peak RSS is the child's own ru_maxrss (Linux reports KiB), not the parent's; with
    ``output``, the size of the file the command wrote is recorded too."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    finally:
        if log_path:
            log.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    written = output.stat().st_size if output is not None and output.exists() else None
    return Measurement(label, seconds, usage.ru_maxrss * 1024, proc.returncode, written)
