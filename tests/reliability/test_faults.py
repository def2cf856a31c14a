"""Faults while writing: killed runs, Ctrl-C, a full disk, a read-only directory, two writers.

Every case runs the real command line in a subprocess and looks at what is left on disk.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import pytest

from gemma3n_gguf.core.atomic import partial_path

PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial$")
CLI = [sys.executable, "-m", "gemma3n_gguf"]


def start(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def partials(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if PARTIAL.match(p.name)]


def wait_mid_write(proc: subprocess.Popen, directory: Path, min_bytes: int = 8 << 20) -> Path:
    """The run's temporary file once it holds ``min_bytes``: tensor data is being written."""
    while proc.poll() is None:
        for path in partials(directory):
            try:
                if path.stat().st_size >= min_bytes:
                    return path
            except FileNotFoundError:
                pass
        time.sleep(0.002)
    raise AssertionError(f"the run ended (exit {proc.returncode}) before it was caught writing: "
                         f"{proc.stderr.read()}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference_f32(tiny_text_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "model.gguf"
    assert run("convert", tiny_text_checkpoint, "--outtype", "f32", "-o", out).returncode == 0
    return out


@pytest.mark.parametrize("command", ["convert", "quantize"])
def test_sigkill_mid_write_leaves_a_recognisable_partial_that_the_next_run_removes(
        command, tiny_mm_checkpoint, tmp_path):
    dest = tmp_path / "model.gguf"
    options = ["--outtype", "f32"] if command == "convert" else ["--scheme", "Q8_0", "--threads", "1"]
    proc = start(command, tiny_mm_checkpoint, *options, "-o", dest)
    partial = wait_mid_write(proc, tmp_path, min_bytes=4 << 20)
    proc.kill()
    proc.wait(timeout=30)

    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()
    assert partial == partial_path(dest, proc.pid)  # .model.gguf.<pid>.partial
    assert partial.exists()

    rerun = run("convert", tiny_mm_checkpoint, "--outtype", "f16", "-o", tmp_path / "other.gguf")
    assert rerun.returncode == 0, rerun.stderr
    assert not partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.gguf"]


def test_a_partial_of_a_live_process_is_left_alone(tiny_text_checkpoint, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        foreign = partial_path(tmp_path / "busy.gguf", sleeper.pid)
        foreign.write_bytes(b"being written")
        assert run("convert", tiny_text_checkpoint, "-o", tmp_path / "model.gguf").returncode == 0
        assert foreign.read_bytes() == b"being written"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sigint_mid_write_removes_the_partial_at_once(tiny_mm_checkpoint, tmp_path):
    dest = tmp_path / "model.gguf"
    proc = start("convert", tiny_mm_checkpoint, "--outtype", "f32", "-o", dest)
    wait_mid_write(proc, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr  # 128 + SIGINT, as shells report Ctrl-C
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_sigterm_mid_write_removes_the_partial_at_once(tiny_mm_checkpoint, tmp_path):
    dest = tmp_path / "model.gguf"
    proc = start("convert", tiny_mm_checkpoint, "--outtype", "f32", "-o", dest)
    wait_mid_write(proc, tmp_path)
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 143, stderr  # 128 + SIGTERM
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("command", ["convert", "quantize"])
def test_disk_full_is_one_clean_line_and_no_file(command, tiny_text_checkpoint, tmp_path):
    dest = tmp_path / "model.gguf"
    options = ["--outtype", "f32"] if command == "convert" else ["--scheme", "Q8_0"]
    result = run(command, tiny_text_checkpoint, *options, "-o", dest, preexec_fn=_file_size_limit(4 << 20))

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: cannot write {dest}: File too large (the disk is full")
    assert line.endswith("nothing was written")
    assert list(tmp_path.iterdir()) == []


def _read_only_runner() -> list[str]:
    # root ignores directory permissions; an unprivileged user namespace makes it an ordinary user
    return ["unshare", "--user"] if os.geteuid() == 0 else []


def test_read_only_destination_directory(tiny_text_checkpoint, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = subprocess.run([*_read_only_runner(), *CLI, "convert", str(tiny_text_checkpoint),
                                 "-o", str(locked / "model.gguf")], capture_output=True, text=True, timeout=300)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: cannot write to {locked}: Permission denied (the directory is read-only for this user; "
        "write elsewhere)")
    assert list(locked.iterdir()) == []


def test_two_runs_writing_one_output_leave_one_complete_file(tiny_text_checkpoint, reference_f32, tmp_path):
    dest = tmp_path / "model.gguf"
    procs = [start("convert", tiny_text_checkpoint, "--outtype", "f32", "-o", dest) for _ in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    assert sorted(tmp_path.iterdir()) == [dest]
    assert sha256(dest) == sha256(reference_f32)
    assert len(gguf.GGUFReader(dest).tensors) == len(gguf.GGUFReader(reference_f32).tensors)


@pytest.mark.parametrize("victim", ["config.json", "model-00001-of-00008.safetensors", "tokenizer.model",
                                    "model.safetensors.index.json"])
def test_convert_refuses_to_overwrite_a_checkpoint_file(victim, tiny_text_checkpoint, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_text_checkpoint, ckpt)
    before = sha256(ckpt / victim)
    result = run("convert", ckpt, "-o", ckpt / victim)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: the output {ckpt / victim} is an input of this run ({ckpt / victim}); "
        "choose another output path with -o")
    assert sha256(ckpt / victim) == before
    assert not partials(ckpt)


def test_convert_mmproj_refuses_a_symlink_to_an_input(tiny_mm_checkpoint, tmp_path):
    link = tmp_path / "out.gguf"
    link.symlink_to(tiny_mm_checkpoint / "config.json")
    result = run("convert", tiny_mm_checkpoint, "--mmproj-only", "-o", link)
    assert result.returncode == 1
    assert "is an input of this run" in one_error_line(result.stderr)
    assert link.is_symlink()


def test_quantize_refuses_its_source_gguf_as_output(reference_f32, tmp_path):
    source = tmp_path / "model.gguf"
    shutil.copy(reference_f32, source)
    result = run("quantize", source, "--scheme", "Q8_0", "-o", source)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: the output {source} is an input of this run ({source}); choose another output path with -o")
    assert sha256(source) == sha256(reference_f32)


def test_quantize_refuses_its_imatrix_as_output(tiny_text_checkpoint, reference_f32, tmp_path):
    imatrix = tmp_path / "imatrix.gguf"
    text = Path(__file__).parents[2] / "gemma3n_gguf" / "data" / "eval-text.txt"
    made = run("imatrix", tiny_text_checkpoint, "--text", text, "--chunks", "1", "--ctx", "64", "-o", imatrix)
    assert made.returncode == 0, made.stderr
    before = sha256(imatrix)
    result = run("quantize", reference_f32, "--scheme", "Q4_K_M", "--imatrix", imatrix, "-o", imatrix)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: the output {imatrix} is an input of this run ({imatrix}); choose another output path with -o")
    assert sha256(imatrix) == before


def test_a_file_where_the_output_directory_should_be(tmp_path):
    from gemma3n_gguf.core.atomic import atomic_path
    from gemma3n_gguf.core.errors import ConversionError

    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ConversionError) as caught, atomic_path(tmp_path / "a-file" / "m.gguf"):
        pass
    assert str(caught.value) == (f"cannot write to {tmp_path / 'a-file'}: File exists "
                                 "(a part of the path is a file, not a directory)")
