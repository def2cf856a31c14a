"""The peer tools we measure against: llama.cpp's reference converter, from the same
llama-cpp-python 0.3.36 sdist whose runtime we target (fetched from PyPI with pip, its SHA-256
checked by pip's --require-hashes).

    python bench/peers.py        # the install step (.ci/run): fetch the pinned sdist once

Tests and benchmarks only read the unpacked cache; they never download.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "llama-cpp-python==0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
CACHE = Path(os.environ.get("GEMMA3N_GGUF_CACHE", Path.home() / ".cache" / "gemma3n-gguf")) / "peers"
_WANTED = ("vendor/llama.cpp/convert_hf_to_gguf.py", "vendor/llama.cpp/conversion/", "vendor/llama.cpp/gguf-py/")


class PeerMissing(RuntimeError):
    pass


def llama_cpp_tree(download: bool = False) -> Path:
    """``vendor/llama.cpp`` of the sdist (only the converter and gguf-py are unpacked); fetched
    with pip if absent and ``download`` (the install step's job, never a test's)."""
    root = CACHE / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
    if (root / "convert_hf_to_gguf.py").is_file():
        return root
    if not download:
        raise PeerMissing(f"llama.cpp's converter is not in {CACHE}: run `python bench/peers.py` to fetch {SDIST}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        pinned = Path(tmp) / "requirements.txt"
        pinned.write_text(f"{SDIST} --hash=sha256:{SDIST_SHA256}\n")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--require-hashes", "-q", "-d", tmp, "-r", str(pinned)], check=True)
        archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if any(w in m.name for w in _WANTED)]
            tar.extractall(CACHE, members=members, filter="data")
    return root


def reference_convert_command(checkpoint: Path, out: Path, outtype: str) -> list[str]:
    script = llama_cpp_tree() / "convert_hf_to_gguf.py"
    return [sys.executable, str(script), str(checkpoint), "--outtype", outtype, "--outfile", str(out)]


if __name__ == "__main__":
    print(llama_cpp_tree(download=True))
