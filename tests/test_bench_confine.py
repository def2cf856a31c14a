"""bench/confine.py: a run confined to a memory cgroup is held to its limit by the kernel, and the
measurement says so (what bench/validate_confined.py relies on for its 3 GiB bound)."""

from __future__ import annotations

import sys

import pytest
from confine import ConfinementUnavailable, MemoryCgroup, evict_from_page_cache
from measure import run_measured

MIB = 2**20
LIMIT = 128 * MIB


def _allocating(mib: int) -> list[str]:
    """A child that touches ``mib`` MiB of anonymous memory (bytearray writes every page) and holds it
    for half a second, longer than the monitor's sampling interval."""
    return [sys.executable, "-c",
            f"import time; b = bytearray({mib} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5)"]


@pytest.fixture(scope="module", autouse=True)
def cgroups_writable():
    try:
        MemoryCgroup(LIMIT).close()
    except ConfinementUnavailable as exc:
        pytest.skip(f"this machine gives no writable memory cgroup: {exc}")


def test_a_run_within_the_limit_completes_and_records_it(tmp_path):
    log = tmp_path / "log"
    run = run_measured("small", _allocating(32), str(log), memory_limit=LIMIT)
    assert run.returncode == 0, log.read_text()
    assert run.oom_kills == 0
    assert run.memory_limit_bytes == LIMIT
    assert 32 * MIB <= run.cgroup_peak_bytes <= LIMIT
    assert 32 * MIB <= run.peak_rss_anon_bytes <= LIMIT
    assert run.record("small", 0)["memory_limit_bytes"] == LIMIT


def test_a_run_over_the_limit_is_killed_by_the_kernel(tmp_path):
    run = run_measured("large", _allocating(256), str(tmp_path / "log"), memory_limit=LIMIT)
    assert run.returncode == -9
    assert run.oom_kills >= 1
    # anonymous memory is always charged to the cgroup; file pages another process cached first
    # (the interpreter's own) may be mapped without being charged, so the total is not bounded
    assert run.peak_rss_anon_bytes <= LIMIT


def test_unconfined_runs_record_no_confinement_fields(tmp_path):
    run = run_measured("free", _allocating(8), str(tmp_path / "log"))
    assert run.returncode == 0
    assert "memory_limit_bytes" not in run.record("free", 0)


@pytest.mark.parametrize("named", ["file", "directory"])
def test_file_pages_read_inside_the_cgroup_are_charged_to_it(tmp_path, named):
    """After eviction of a file just written (named, or found under a directory), a confined child
    reading it is charged for its pages: reading 64 MiB raises the cgroup's peak by at least that much
    (it would stay near zero had the pages stayed cached, charged to whoever wrote them)."""
    data = tmp_path / "data.bin"
    data.write_bytes(b"\1" * (64 * MIB))
    evict_from_page_cache([data if named == "file" else tmp_path])
    reader = [sys.executable, "-c", f"open({str(data)!r}, 'rb').read(); print('read')"]
    # the read() buffer is anonymous (64 MiB) plus the page cache it came through (64 MiB)
    run = run_measured("reader", reader, str(tmp_path / "log"), memory_limit=512 * MIB)
    assert run.returncode == 0
    assert run.cgroup_peak_bytes >= 2 * 64 * MIB
