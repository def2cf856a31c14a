"""Every kind of file the toolkit writes, built through the command line, with its SHA-256.

Recorded once before the layered-architecture move (``python tests/golden/outputs.py
--record``) and asserted after it by ``tests/test_golden_outputs.py``: a refactor that
changes one byte of any output fails. Inputs are the project's own deterministic
checkpoints (same preset and seed, same bytes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import sys
from pathlib import Path

HASHES = Path(__file__).with_name("output-hashes.json")

CHECKPOINTS = {  # name -> (preset, saving)
    "tiny-text": ("tiny-text", "transformers5"),
    "tiny-text-google": ("tiny-text", "google"),
    "tiny-text-256": ("tiny-text-256", "transformers5"),
    "tiny-mm": ("tiny-mm", "transformers5"),
    "tiny-mm-300m": ("tiny-mm-300m", "transformers5"),
}

# output file name -> command-line arguments ({ckpt:NAME} and {out} are filled in)
CONVERT = {
    **{f"tiny-text-{t}.gguf": ["convert", "{ckpt:tiny-text}", "--outtype", t] for t in ("f32", "f16", "bf16", "q8_0")},
    "tiny-text-google-f16.gguf": ["convert", "{ckpt:tiny-text-google}", "--outtype", "f16"],
    "tiny-text-256-f16.gguf": ["convert", "{ckpt:tiny-text-256}", "--outtype", "f16"],
    "tiny-text-256-q8_0.gguf": ["convert", "{ckpt:tiny-text-256}", "--outtype", "q8_0"],
    "tiny-mm-f16.gguf": ["convert", "{ckpt:tiny-mm}", "--mmproj"],  # exact tokens by default
    "tiny-mm-plain-q8_0.gguf": ["convert", "{ckpt:tiny-mm}", "--mmproj", "--no-exact-mm-tokens", "--outtype", "q8_0",
                                "--mmproj-type", "q8_0"],
    "tiny-mm-exact-bf16.gguf": ["convert", "{ckpt:tiny-mm}", "--exact-mm-tokens", "--outtype", "bf16"],
    "mmproj-tiny-mm-f32.gguf": ["convert", "{ckpt:tiny-mm}", "--mmproj-only", "--mmproj-type", "f32"],
    "mmproj-tiny-mm-bf16.gguf": ["convert", "{ckpt:tiny-mm}", "--mmproj-only", "--mmproj-type", "bf16"],
    "tiny-mm-300m-bf16.gguf": ["convert", "{ckpt:tiny-mm-300m}", "--outtype", "bf16"],
    "tiny-mm-300m-f16.gguf": ["convert", "{ckpt:tiny-mm-300m}", "--outtype", "f16", "--mmproj"],
}

QUANTIZE = {
    **{f"tiny-text-256-{s}.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", s]
       for s in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_K_S", "Q6_K", "Q8_0", "IQ4_XS", "F16", "BF16")},
    "tiny-text-Q4_K_M.gguf": ["quantize", "{ckpt:tiny-text}", "--scheme", "Q4_K_M"],
    "tiny-text-256-Q4_K_M-bf16.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", "Q4_K_M", "--intermediate", "bf16"],
    "tiny-text-256-Q4_K_M-f16.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", "Q4_K_M", "--intermediate", "f16"],
    "tiny-text-256-Q4_K_M-ple.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", "Q4_K_M", "--ple-type", "q8_0",
                                      "--tensor-type", "attn_q=q5_k", "--output-tensor-type", "q6_k"],
    "tiny-text-256-Q4_K_S-pure.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", "Q4_K_S", "--pure"],
    "tiny-mm-Q4_K_M-exact.gguf": ["quantize", "{ckpt:tiny-mm}", "--scheme", "Q4_K_M", "--exact-mm-tokens"],
    "requant-Q4_K_M.gguf": ["quantize", "{out}/tiny-text-256-f16.gguf", "--scheme", "Q4_K_M"],
    "requant-q8-Q5_K_M.gguf": ["quantize", "{out}/tiny-text-256-q8_0.gguf", "--scheme", "Q5_K_M", "--allow-requantize"],
    "imatrix-tiny-text-256.gguf": ["imatrix", "{ckpt:tiny-text-256}", "--text", "{evaltext}", "--chunks", "2",
                                   "--ctx", "128"],
    "tiny-text-256-IQ4_XS-imatrix.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", "IQ4_XS",
                                          "--imatrix", "{out}/imatrix-tiny-text-256.gguf"],
    "tiny-text-256-Q4_K_M-imatrix.gguf": ["quantize", "{ckpt:tiny-text-256}", "--scheme", "Q4_K_M",
                                          "--imatrix", "{out}/imatrix-tiny-text-256.gguf"],
}

EXTRA_OUTPUTS = {  # files a command writes beside its -o output
    "tiny-mm-f16.gguf": ["mmproj-tiny-mm-F16.gguf"],
    "tiny-mm-plain-q8_0.gguf": ["mmproj-tiny-mm-Q8_0.gguf"],
    "tiny-mm-300m-f16.gguf": ["mmproj-tiny-mm-300m-F16.gguf"],
}


def _fill(arg: str, checkpoints: dict[str, Path], out: Path, evaltext: Path) -> str:
    if arg.startswith("{ckpt:"):
        return str(checkpoints[arg[6:-1]])
    return arg.replace("{out}", str(out)).replace("{evaltext}", str(evaltext))


def build_outputs(work: Path, prebuilt: dict[str, Path] | None = None) -> dict[str, str]:
    """Build every checkpoint and output under ``work``; return {output name: sha256}. ``prebuilt``:
    checkpoints of CHECKPOINTS already built elsewhere (same preset, seed and saving), linked in."""
    from typer.testing import CliRunner

    from gemma3n_gguf.cli import app
    from gemma3n_gguf.fixtures import make_checkpoint

    work.mkdir(parents=True, exist_ok=True)
    evaltext = Path("calibration.txt")  # a relative path: the imatrix records its dataset's name
    shutil.copyfile(Path(__import__("gemma3n_gguf").__file__).parent / "data" / "eval-text.txt", work / evaltext)
    with contextlib.chdir(work):  # relative paths: the imatrix file's path is written into the GGUF
        checkpoints = {name: _linked(Path("ckpt") / name, (prebuilt or {}).get(name))
                           or make_checkpoint(Path("ckpt") / name, preset, seed=0, saving=saving)
                       for name, (preset, saving) in CHECKPOINTS.items()}
        out = Path("out")
        out.mkdir(exist_ok=True)
        runner = CliRunner()
        for name, args in {**CONVERT, **QUANTIZE}.items():
            argv = [_fill(a, checkpoints, out, evaltext) for a in args] + ["-o", str(out / name)]
            result = runner.invoke(app, argv, catch_exceptions=False)
            if result.exit_code != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {result.exit_code}: {result.output}")
        names = sorted({*CONVERT, *QUANTIZE, *(n for extra in EXTRA_OUTPUTS.values() for n in extra)})
        return {name: _sha256(out / name) for name in names}


def _linked(link: Path, target: Path | None) -> Path | None:
    if target is None:
        return None
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target.resolve(), target_is_directory=True)
    return link


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("work", type=Path, help="scratch directory")
    parser.add_argument("--record", action="store_true", help=f"write {HASHES.name}")
    args = parser.parse_args()
    hashes = build_outputs(args.work)
    if args.record:
        HASHES.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    json.dump(hashes, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
