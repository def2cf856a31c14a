"""Package the e2b-shape checkpoint (Q4_K_M + Q8_0, plus the projector when the checkpoint has
towers) and record wall time and peak RSS per stage in bench/results/package_e2b.json.

    python bench/package_e2b.py [--repeat 3] [--preset e2b-shape] [--target llama.cpp] [--chunks 2]
                                [--schemes Q4_K_M,Q8_0]

Stages, each its own child process so each has its own peak RSS: ``quantize`` per scheme, the
projector (``convert --mmproj-only``), ``validate`` per scheme (transformers reference and
llama.cpp; the first one fills the reference cache), ``modelfile`` (first scheme); then ``package``
end to end into a fresh directory (with the reference cache warm), and ``package`` again on that
directory, which must skip every step. The checkpoint is built once in WORKDIR and reused. A smoke
run may pass one scheme: every stage still runs once.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, warm_page_cache, write_results  # noqa: E402
from measure import run_measured  # noqa: E402

BENCH = "package_e2b"
SCHEMES = "Q4_K_M,Q8_0"
CLI = [sys.executable, "-m", "gemma3n_gguf"]


def has_towers(checkpoint: Path) -> bool:
    """Whether the checkpoint holds vision weights (the projector needs them)."""
    index = json.loads((checkpoint / "model.safetensors.index.json").read_text())
    return any(".vision_tower." in name for name in index["weight_map"])


def stages(ckpt: Path, work: Path, args, towers: bool) -> list[tuple[str, list[str], Path | None]]:
    """(role, command, output file) of every stage, in order."""
    common = ["--chunks", str(args.chunks), "--cache-dir", str(work / "reference-cache")]
    projector = work / "stages" / "mmproj.gguf"
    out = []
    for scheme in args.schemes:
        model = work / "stages" / f"{scheme}.gguf"
        out.append((f"quantize_{scheme}", [*CLI, "quantize", str(ckpt), "-s", scheme, "--target", args.target,
                                           "-o", str(model), "--json"], model))
    if towers:
        out.append(("projector", [*CLI, "convert", str(ckpt), "--mmproj-only", "-o", str(projector), "--json"],
                    projector))
    for scheme in args.schemes:
        model = work / "stages" / f"{scheme}.gguf"
        out.append((f"validate_{scheme}", [*CLI, "validate", str(model), "--reference", str(ckpt), *common,
                                           *(["--mmproj", str(projector)] if towers else []), "--json"], None))
    first_model = work / "stages" / f"{args.schemes[0]}.gguf"
    out.append(("modelfile", [*CLI, "modelfile", str(first_model), "--checkpoint", str(ckpt),
                              *(["--mmproj", str(projector)] if towers else []),
                              "-o", str(work / "stages" / "Modelfile")], work / "stages" / "Modelfile"))
    package = [*CLI, "package", str(ckpt), "--schemes", ",".join(args.schemes), "--target", args.target,
               "-o", str(work / "dist"), *common, *(["--mmproj"] if towers else []), "--json"]
    out += [("package", package, work / "dist" / "SHA256SUMS"), ("package_rerun", package, work / "dist" / "SHA256SUMS")]
    return out


def mtimes(directory: Path) -> dict[str, int]:
    return {p.relative_to(directory).as_posix(): p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def main() -> None:
    parser = bench_parser(__doc__, default_preset="e2b-shape")
    parser.add_argument("--target", default="llama.cpp", help="runtime profile (llama.cpp, ollama, lmstudio)")
    parser.add_argument("--chunks", type=int, default=2, help="validation windows of 512 tokens (default 2)")
    parser.add_argument("--schemes", default=SCHEMES, type=lambda text: text.split(","),
                        help=f"schemes quantized, validated and packaged (default {SCHEMES}; one for a smoke run)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    warm_page_cache(ckpt)
    towers = has_towers(ckpt)
    runs, rewrote = [], []
    for repeat in range(args.repeat):
        shutil.rmtree(args.workdir / "dist", ignore_errors=True)
        (args.workdir / "stages").mkdir(exist_ok=True)
        for role, command, output in stages(ckpt, args.workdir, args, towers):
            print(f"[{repeat + 1}/{args.repeat}] {role}", flush=True)
            measured = run_measured(f"gemma3n-gguf {role}", command,
                                    str(args.workdir / f"{role}.log"), output=output)
            runs.append(measured.record(role, repeat))
            if measured.returncode != 0:
                sys.exit(f"{role} failed (exit {measured.returncode}); see {args.workdir / f'{role}.log'}")
            if role == "package":
                written = mtimes(args.workdir / "dist")
        rewrote += [name for name, mtime in mtimes(args.workdir / "dist").items() if written.get(name) != mtime]
    checks = {"projector": towers, "files": sorted(written), "rerun_rewrote": sorted(set(rewrote))}
    path = write_results(BENCH, args, runs, checks)
    for run in runs:
        print(f"{run['tool']:<40} {run['wall_s']:>9.1f} s {run['peak_rss_bytes'] / 2**30:>7.2f} GiB")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
