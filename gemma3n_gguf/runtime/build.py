"""Build a patched llama.cpp runtime from the pinned llama-cpp-python sdist, cached.

The project tests against the llama.cpp vendored in llama-cpp-python 0.3.36. Where that runtime
cannot run a file this project writes (mixed FFN widths, Gemma 3n audio, ...), the smallest fix lives
beside this module as a ``patches/NNNN-*.patch`` against ``vendor/llama.cpp``. This module applies
every patch, in order, to a fresh copy of the sdist and builds, with the sdist's own CMake project,
the shared libraries llama-cpp-python loads (libllama, libggml*, libmtmd and their helpers) and the
tools ``bin/llama-mtmd-cli``, ``bin/llama-server`` and ``bin/llama-imatrix``, into
``~/.cache/gemma3n-gguf/runtime/<hash of sdist + patches + CMake options>``. A second run with the
same inputs reuses that directory; a directory there is complete (it appears by one rename, marker
inside). llama-cpp-python loads it with ``LLAMA_CPP_LIB_PATH`` and ``MTMD_CPP_LIB`` (see
:func:`runtime_env`); the libraries must be loaded in a fresh process.

    gemma3n-gguf runtime build                  # the command; its last stdout line is the directory
    python -m gemma3n_gguf.runtime.build        # the same build: the install step of .ci/run

Tests only read the cache (``fetch=False``): they never download.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from gemma3n_gguf.core.errors import RuntimeUnavailableError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"  # as bench/peers.py
PATCH_DIR = Path(__file__).parent / "patches"
DEFAULT_CACHE = Path(os.environ.get("GEMMA3N_GGUF_CACHE", Path.home() / ".cache" / "gemma3n-gguf")) / "runtime"
LIBRARY_TARGETS = ("llama", "ggml", "ggml-base", "ggml-cpu", "mtmd")
TOOL_TARGETS = ("llama-mtmd-cli", "llama-server", "llama-imatrix")
TOOL_DIR = "bin"
# -D options of the sdist's CMake project. The sdist adds tools/mtmd itself (LLAVA_BUILD) unless told
# not to; with llama.cpp's tools on, llama.cpp's tools/ adds it, and adding it twice is a CMake error.
CMAKE_OPTIONS = {
    "CMAKE_BUILD_TYPE": "Release",
    "LLAMA_BUILD_TESTS": "OFF",
    "LLAMA_BUILD_EXAMPLES": "OFF",
    "LLAMA_BUILD_TOOLS": "ON",
    "LLAMA_BUILD_SERVER": "ON",
    "LLAVA_BUILD": "OFF",
    "LLAMA_BUILD_UI": "OFF",  # no npm, and no download of the prebuilt web UI: the server's HTTP API only
    "LLAMA_USE_PREBUILT_UI": "OFF",
    "LLAMA_OPENSSL": "OFF",  # a local server; no libssl-dev needed
    # Relative build RPATHs, plus the library directory above bin/: the copies run where they land.
    "CMAKE_BUILD_RPATH_USE_ORIGIN": "ON",
    "CMAKE_BUILD_RPATH": "$ORIGIN/..",
}
_DONE_MARKER = "BUILD_OK"

Log = Callable[[str], None]
Progress = Callable[[str, int], None]  # (what is building, percent)


def _quiet(*_: object) -> None:
    pass


def patches(patch_dir: Path = PATCH_DIR) -> list[Path]:
    """The patches applied, in the order of their number."""
    return sorted(patch_dir.resolve().glob("*.patch"))


def tool_path(runtime_dir: Path, tool: str) -> Path:
    """Where ``tool`` (one of :data:`TOOL_TARGETS`) is in a built runtime directory."""
    return runtime_dir / TOOL_DIR / tool


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
    """Hash of the sdist bytes, every patch (name and bytes), the CMake options and the targets:
    the cache directory name."""
    digest = hashlib.sha256()
    with sdist.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    for patch in patch_files:
        digest.update(patch.name.encode())
        digest.update(patch.read_bytes())
    digest.update(json.dumps([CMAKE_OPTIONS, LIBRARY_TARGETS, TOOL_TARGETS], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def missing_tools() -> list[str]:
    """Build tools not on PATH: patch, cmake, and the C and C++ compilers CMake would pick."""
    wanted = ["patch", "cmake", os.environ.get("CC", "cc"), os.environ.get("CXX", "c++")]
    return [tool for tool in wanted if shutil.which(tool) is None]


def build_runtime(sdist: Path | None = None, cache_root: Path = DEFAULT_CACHE, jobs: int = 2, *,
                  patch_dir: Path = PATCH_DIR, fetch: bool = True, log: Log = _quiet,
                  progress: Progress = _quiet) -> Path:
    """The runtime directory (shared libraries, tools in ``bin/``), built now unless already cached.
    ``log`` gets one line per step, ``progress`` the build's percentage as CMake reports it."""
    sdist = sdist or fetch_sdist(cache_root, fetch)
    patch_files = patches(patch_dir)
    runtime_dir = cache_root / build_key(sdist, patch_files)
    if (runtime_dir / _DONE_MARKER).is_file():
        return runtime_dir
    if not fetch:
        raise RuntimeUnavailableError(f"the patched runtime is not built in {runtime_dir}: run "
                                      "`gemma3n-gguf runtime build` (the install step of .ci/run)")
    missing = missing_tools()
    if missing:
        raise RuntimeUnavailableError(f"{', '.join(missing)} not found: building the patched runtime needs patch, "
                                      "cmake and a C/C++ compiler on PATH (apt-get install patch cmake g++; "
                                      "or CC/CXX naming one)")
    with tempfile.TemporaryDirectory(prefix="gemma3n-runtime-") as scratch:
        log(f"unpacking {sdist.name}")
        source = _unpack(sdist, Path(scratch))
        for patch in patch_files:
            log(f"applying {patch.name}")
            _run(["patch", "-p1", "--forward", "--batch", "--fuzz=0", "-i", str(patch)], f"applying {patch.name}",
                 cwd=source / "vendor" / "llama.cpp")
        build = Path(scratch) / "build"
        _compile(source, build, jobs, log, progress)
        _install(build, runtime_dir, patch_files)
    log(f"done: {runtime_dir}")
    return runtime_dir


def _compile(source: Path, build: Path, jobs: int, log: Log, progress: Progress) -> None:
    """Configure and build every target. With Ninja (when on PATH) one build counts all steps; with
    make, CMake's percentage restarts at each target named, so each is built and reported alone."""
    ninja = shutil.which("ninja") is not None and "CMAKE_GENERATOR" not in os.environ
    log("configuring llama.cpp (cmake)")
    _run(["cmake", "-S", str(source), "-B", str(build), *(["-G", "Ninja"] if ninja else []),
          *(f"-D{key}={value}" for key, value in CMAKE_OPTIONS.items())], "configuring llama.cpp")
    targets = (*LIBRARY_TARGETS, *TOOL_TARGETS)
    log(f"building {', '.join(targets)} with {jobs} jobs (30-40 min on 2 cores)")
    for group in [targets] if ninja else [(target,) for target in targets]:
        label = "llama.cpp" if ninja else group[0]
        _run(["cmake", "--build", str(build), "--parallel", str(jobs), "--target", *group], f"building {label}",
             progress=lambda percent, label=label: progress(label, percent))


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


def _install(build: Path, runtime_dir: Path, patch_files: list[Path]) -> None:
    """Copy every built ``lib*.so*`` (symlinks kept), the tools and the marker into a staging
    directory, then rename it to ``runtime_dir``: an interrupted build leaves only ``*.partial``."""
    staging = runtime_dir.with_name(runtime_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / TOOL_DIR).mkdir(parents=True)
    try:
        for path in sorted(path for path in build.rglob("lib*.so*") if path.parent.name != "CMakeFiles"):
            shutil.copy2(path, staging / path.name, follow_symlinks=False)
        for tool in TOOL_TARGETS:
            built = [path for path in build.rglob(tool) if path.is_file() and os.access(path, os.X_OK)]
            if built:
                shutil.copy2(built[0], tool_path(staging, tool))
        absent = [f"lib{name}.so" for name in LIBRARY_TARGETS if not (staging / f"lib{name}.so").exists()]
        absent += [tool for tool in TOOL_TARGETS if not tool_path(staging, tool).is_file()]
        if absent:
            raise RuntimeUnavailableError(f"the build produced no {', '.join(absent)} under {build}")
        (staging / _DONE_MARKER).write_text("\n".join(p.name for p in patch_files) + "\n")
        shutil.rmtree(runtime_dir, ignore_errors=True)
        staging.rename(runtime_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(command: list[str], what: str, cwd: Path | None = None,
         progress: Callable[[int], None] | None = None) -> None:
    """Run ``command``, passing the build's percentage to ``progress``; on failure, one line: the
    first compiler or CMake error it printed, else its last line."""
    first_error = last = ""
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            for line in proc.stdout:
                if line.strip():
                    last = line.strip()
                    if not first_error and _ERROR_LINE.search(last):
                        first_error = last
                percent = build_percent(line)
                if progress and percent is not None:
                    progress(percent)
        except BaseException:  # Ctrl-C or SIGTERM: stop the build too, then unwind (the scratch is removed)
            proc.kill()
            raise
    if proc.returncode != 0:
        raise RuntimeUnavailableError(f"{what} failed ({command[0]} exit {proc.returncode}): "
                                      f"{first_error or last or 'no output'}")


_ERROR_LINE = re.compile(r"\berror\b[:\s]|CMake Error", re.IGNORECASE)
_MAKE_PERCENT = re.compile(r"^\s*\[\s*(\d{1,3})%\]")  # Unix Makefiles: "[ 42%] Building CXX object ..."
_NINJA_STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")  # Ninja: "[17/240] Building CXX object ..."


def build_percent(line: str) -> int | None:
    """The build's completion in percent from one line of ``cmake --build`` output, if it says."""
    if match := _MAKE_PERCENT.match(line):
        return int(match.group(1))
    if match := _NINJA_STEP.match(line):
        return 100 * int(match.group(1)) // max(int(match.group(2)), 1)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gemma3n_gguf.runtime.build", description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", type=Path, help="a local llama-cpp-python sdist (default: the pinned one)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache root")
    parser.add_argument("--patches", type=Path, default=PATCH_DIR, help="directory of *.patch files")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    shown: dict[str, int] = {}

    def every_tenth(what: str, percent: int) -> None:
        if percent >= shown.get(what, -10) + 10:
            shown[what] = percent
            print(f"  {what} {percent}%", file=sys.stderr, flush=True)

    try:
        lib_dir = build_runtime(args.sdist, args.cache, args.jobs, patch_dir=args.patches,
                                log=lambda line: print(line, file=sys.stderr, flush=True), progress=every_tenth)
    except RuntimeUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(lib_dir)


if __name__ == "__main__":
    main()
