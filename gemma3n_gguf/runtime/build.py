"""Build a patched llama.cpp runtime from the pinned llama-cpp-python sdist, cached.

The project tests against the llama.cpp vendored in llama-cpp-python 0.3.36. Where that runtime
cannot run a file this project writes (mixed FFN widths, ...), the smallest fix lives beside this
module as a ``patches/NNNN-*.patch`` against ``vendor/llama.cpp``. This module applies every patch
to a fresh copy of the sdist and builds libllama, libggml* and libmtmd with the sdist's own CMake
project (so the flags equal a ``pip install``), into
``~/.cache/gemma3n-gguf/runtime/<hash of sdist + patches>``. A second run with the same inputs
reuses that directory; a directory there is complete (it appears by one rename, marker inside).
llama-cpp-python loads it with ``LLAMA_CPP_LIB_PATH`` and ``MTMD_CPP_LIB`` (see
:func:`runtime_env`); the libraries must be loaded in a fresh process.

    python -m gemma3n_gguf.runtime.build        # the install step (.ci/run); prints the directory

Tests only read the cache (``fetch=False``): they never download.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

from gemma3n_gguf.core.errors import RuntimeUnavailableError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"  # as bench/peers.py
PATCH_DIR = Path(__file__).parent / "patches"
DEFAULT_CACHE = Path(os.environ.get("GEMMA3N_GGUF_CACHE", Path.home() / ".cache" / "gemma3n-gguf")) / "runtime"
LIBRARY_TARGETS = ("llama", "ggml", "ggml-base", "ggml-cpu", "mtmd")
_DONE_MARKER = "BUILD_OK"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def patches(patch_dir: Path = PATCH_DIR) -> list[Path]:
    """The patches applied, in the order of their number."""
    return sorted(patch_dir.glob("*.patch"))


def fetch_sdist(cache_root: Path = DEFAULT_CACHE, fetch: bool = True) -> Path:
    """The pinned sdist in the cache; downloaded once with pip (hash-checked) if ``fetch``."""
    target = cache_root / "sdist" / SDIST_NAME
    if target.is_file():
        return target
    if not fetch:
        raise RuntimeUnavailableError(f"{SDIST_NAME} is not in {target.parent}: run "
                                      "`python -m gemma3n_gguf.runtime.build` (the install step of .ci/run)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        pinned = Path(tmp) / "requirements.txt"
        pinned.write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} --hash=sha256:{SDIST_SHA256}\n")
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
              "-q", "-d", tmp, "-r", str(pinned)], "downloading the llama-cpp-python sdist")
        (Path(tmp) / SDIST_NAME).rename(target)
    return target


def build_key(sdist: Path, patch_files: list[Path]) -> str:
    """Hash of the sdist bytes and every patch (name and bytes): the cache directory name."""
    digest = hashlib.sha256()
    with sdist.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    for patch in patch_files:
        digest.update(patch.name.encode())
        digest.update(patch.read_bytes())
    return digest.hexdigest()[:16]


def missing_tools() -> list[str]:
    """Build tools not on PATH: patch, cmake, and the C and C++ compilers CMake would pick."""
    wanted = ["patch", "cmake", os.environ.get("CC", "cc"), os.environ.get("CXX", "c++")]
    return [tool for tool in wanted if shutil.which(tool) is None]


def build_runtime(sdist: Path | None = None, cache_root: Path = DEFAULT_CACHE, jobs: int = 2, *,
                  patch_dir: Path = PATCH_DIR, fetch: bool = True, log: Log = _quiet) -> Path:
    """The directory of patched shared libraries, built now unless already cached."""
    sdist = sdist or fetch_sdist(cache_root, fetch)
    patch_files = patches(patch_dir)
    lib_dir = cache_root / build_key(sdist, patch_files)
    if (lib_dir / _DONE_MARKER).is_file():
        return lib_dir
    if not fetch:
        raise RuntimeUnavailableError(f"the patched runtime is not built in {lib_dir}: run "
                                      "`python -m gemma3n_gguf.runtime.build` (the install step of .ci/run)")
    missing = missing_tools()
    if missing:
        raise RuntimeUnavailableError(f"{', '.join(missing)} not found on PATH: building the patched runtime "
                                      "needs patch, cmake and a C/C++ compiler (apt-get install patch cmake g++)")
    with tempfile.TemporaryDirectory(prefix="gemma3n-runtime-") as scratch:
        log(f"unpacking {sdist.name}")
        source = _unpack(sdist, Path(scratch))
        for patch in patch_files:
            log(f"applying {patch.name}")
            _run(["patch", "-p1", "--forward", "--batch", "--fuzz=0", "-i", str(patch)], f"applying {patch.name}",
                 cwd=source / "vendor" / "llama.cpp")
        build = Path(scratch) / "build"
        log("configuring llama.cpp (cmake)")
        _run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
              "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"],
             "configuring llama.cpp")
        log(f"building {', '.join(LIBRARY_TARGETS)} with {jobs} jobs (12-20 min on 2 cores)")
        _run(["cmake", "--build", str(build), "--parallel", str(jobs), "--target", *LIBRARY_TARGETS],
             "building llama.cpp", progress=log)
        _install_libraries(build, lib_dir, patch_files)
    log(f"done: {lib_dir}")
    return lib_dir


def runtime_env(lib_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment making llama-cpp-python load the libraries of ``lib_dir``."""
    env = dict(os.environ if base is None else base)
    env["LLAMA_CPP_LIB_PATH"] = str(lib_dir)
    env["MTMD_CPP_LIB"] = str(lib_dir)
    return env


def _unpack(sdist: Path, scratch: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(scratch, filter="data")
    roots = [entry for entry in scratch.iterdir() if entry.is_dir()]
    if len(roots) != 1:
        raise RuntimeUnavailableError(f"{sdist.name} does not unpack to one source directory")
    return roots[0]


def _install_libraries(build: Path, lib_dir: Path, patch_files: list[Path]) -> None:
    """Copy every built ``lib*.so*`` (symlinks kept) and the marker into a staging directory,
    then rename it to ``lib_dir``: an interrupted build leaves only ``*.partial``."""
    staging = lib_dir.with_name(lib_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        found = sorted(path for path in build.rglob("lib*.so*") if path.parent.name != "CMakeFiles")
        for path in found:
            shutil.copy2(path, staging / path.name, follow_symlinks=False)
        if not (staging / "libllama.so").exists():
            raise RuntimeUnavailableError(f"the build produced no libllama.so under {build}")
        (staging / _DONE_MARKER).write_text("\n".join(p.name for p in patch_files) + "\n")
        shutil.rmtree(lib_dir, ignore_errors=True)
        staging.rename(lib_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(command: list[str], what: str, cwd: Path | None = None, progress: Log | None = None) -> None:
    """Run ``command``; its last output line names the failure. ``progress`` gets CMake's
    ``[ NN%]`` lines, one per 10% step."""
    tail: deque[str] = deque(maxlen=1)
    shown = -10
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            if line.strip():
                tail.append(line.strip())
            percent = _cmake_percent(line)
            if progress and percent is not None and percent >= shown + 10:
                shown = percent
                progress(f"  {percent}%")
    if proc.returncode != 0:
        raise RuntimeUnavailableError(f"{what} failed ({command[0]} exit {proc.returncode}): "
                                      f"{tail[0] if tail else 'no output'}")


def _cmake_percent(line: str) -> int | None:
    head = line.lstrip()
    if head.startswith("[") and "%]" in head[:7]:
        digits = head[1:head.index("%]")].strip()
        return int(digits) if digits.isdigit() else None
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gemma3n_gguf.runtime.build", description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", type=Path, help="a local llama-cpp-python sdist (default: the pinned one)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache root")
    parser.add_argument("--patches", type=Path, default=PATCH_DIR, help="directory of *.patch files")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    try:
        lib_dir = build_runtime(args.sdist, args.cache, args.jobs, patch_dir=args.patches,
                                log=lambda line: print(line, file=sys.stderr, flush=True))
    except RuntimeUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(lib_dir)


if __name__ == "__main__":
    main()
