"""Build a patched llama.cpp runtime from the pinned llama-cpp-python sdist, cached.

The project tests against the llama.cpp vendored in llama-cpp-python 0.3.36. Where that runtime
cannot run a file this project writes (mixed FFN widths, ...), the smallest fix lives beside this
module as a ``patches/NNNN-*.patch`` against ``vendor/llama.cpp``. This module applies every patch
to a fresh copy of the sdist and builds libllama, libggml* and libmtmd with the sdist's own CMake
project (so the flags equal a ``pip install``), into
``~/.cache/gemma3n-gguf/runtime/<hash of sdist + patches>``. A second run with the same inputs
reuses that directory. llama-cpp-python loads it with ``LLAMA_CPP_LIB_PATH`` and ``MTMD_CPP_LIB``
(see :func:`runtime_env`); the libraries must be loaded in a fresh process.

    python -m gemma3n_gguf.runtime.build        # prints the library directory
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from gemma3n_gguf.core.errors import RuntimeUnavailableError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
PATCH_DIR = Path(__file__).parent / "patches"
DEFAULT_CACHE = Path.home() / ".cache" / "gemma3n-gguf" / "runtime"
LIBRARY_TARGETS = ("llama", "ggml", "ggml-base", "ggml-cpu", "mtmd")
_DONE_MARKER = "BUILD_OK"


def patches() -> list[Path]:
    """The patches applied, in the order of their number."""
    return sorted(PATCH_DIR.glob("*.patch"))


def fetch_sdist(cache_root: Path = DEFAULT_CACHE) -> Path:
    """The pinned sdist, downloaded once with pip into the cache."""
    target = cache_root / "sdist" / SDIST_NAME
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
               "--no-binary", ":all:", "--no-deps", "--dest", str(target.parent)]
    _run(command, "downloading the llama-cpp-python sdist")
    if not target.is_file():
        raise RuntimeUnavailableError(f"pip did not produce {target}; download {SDIST_NAME} by hand")
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


def build_runtime(sdist: Path | None = None, cache_root: Path = DEFAULT_CACHE, jobs: int = 2) -> Path:
    """The directory of patched shared libraries, built now unless already cached."""
    sdist = sdist or fetch_sdist(cache_root)
    patch_files = patches()
    lib_dir = cache_root / build_key(sdist, patch_files)
    if (lib_dir / _DONE_MARKER).is_file():
        return lib_dir
    with tempfile.TemporaryDirectory(prefix="gemma3n-runtime-") as scratch:
        source = _unpack(sdist, Path(scratch))
        for patch in patch_files:
            _run(["patch", "-p1", "--forward", "-i", str(patch)], f"applying {patch.name}",
                 cwd=source / "vendor" / "llama.cpp")
        build = Path(scratch) / "build"
        _run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
              "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"],
             "configuring llama.cpp")
        _run(["cmake", "--build", str(build), "--parallel", str(jobs), "--target", *LIBRARY_TARGETS],
             "building llama.cpp")
        _collect_libraries(build, lib_dir)
    (lib_dir / _DONE_MARKER).write_text("\n".join(p.name for p in patch_files) + "\n")
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


def _collect_libraries(build: Path, lib_dir: Path) -> None:
    """Copy every built ``lib*.so*`` (symlinks kept) into ``lib_dir``, atomically as a directory."""
    staging = lib_dir.with_name(lib_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    found = sorted(path for path in build.rglob("lib*.so*") if path.parent.name != "CMakeFiles")
    for path in found:
        shutil.copy2(path, staging / path.name, follow_symlinks=False)
    if not (staging / "libllama.so").exists():
        raise RuntimeUnavailableError(f"the build produced no libllama.so under {build}")
    shutil.rmtree(lib_dir, ignore_errors=True)
    staging.rename(lib_dir)


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeUnavailableError(f"{what} failed ({command[0]} exit {result.returncode}): {tail[0]}")


def main() -> None:
    print(build_runtime())


if __name__ == "__main__":
    main()
