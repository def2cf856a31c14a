"""What a benchmark ran on: CPU, cores, memory, OS, Python, the versions of the tools measured,
and how the installed llama-cpp-python's libggml was built."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = ("gemma3n-gguf", "llama-cpp-python", "gguf", "numpy", "safetensors", "torch", "transformers")


def machine_record() -> dict:
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "llama_cpp": llama_cpp_build(),
        "git_commit": _git_commit(),
    }


def llama_cpp_build() -> dict:
    """ggml's own report of the CPU features it was compiled with, plus where the libraries
    come from, the compiler that built them and the wheel that installed them."""
    import llama_cpp

    lib_dir = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib")
    ggml_cpu = next(iter(sorted(lib_dir.glob("libggml-cpu.so.*.*"))), lib_dir / "libggml-cpu.so")
    return {
        "version": llama_cpp.__version__,
        "lib_dir": str(lib_dir),
        "lib_path_override": "LLAMA_CPP_LIB_PATH" in os.environ,
        "ggml_library": ggml_cpu.name,
        "compiler": _compiler(ggml_cpu),
        "wheel": _wheel_tags("llama-cpp-python"),
        "system_info": llama_cpp.llama_print_system_info().decode().strip(" |"),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _compiler(library: Path) -> str | None:
    """The ELF .comment string the compiler left in the library (e.g. "GCC: (Debian 12.2.0-14) 12.2.0")."""
    if not library.is_file():
        return None
    found = re.search(rb"(GCC: \([^\x00]{1,80}\)[^\x00]{0,40}|clang version [^\x00]{1,80})", library.read_bytes())
    return found.group(1).decode(errors="replace") if found else None


def _wheel_tags(name: str) -> dict:
    """Generator and Tag of the installed wheel: a locally built one says scikit-build-core and a
    platform tag such as py3-none-linux_x86_64."""
    try:
        text = metadata.distribution(name).read_text("WHEEL") or ""
    except metadata.PackageNotFoundError:
        return {}
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())
            if key in ("Generator", "Tag")}


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head
