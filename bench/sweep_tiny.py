"""`gemma3n-gguf sweep` of tiny-text (size against quality, one scheme a row) and the f32 conversion
on the same windows, recorded in bench/results/sweep_tiny.json; the sweep's plot is copied to
docs/img/sweep-tiny-text.png, which the README shows.

    python bench/sweep_tiny.py [--repeat 1] [--preset tiny-text] [--schemes Q2_K,...] [--chunks 4] [--plot PNG]

Two measured processes, both the CLI with one reference cache: ``sweep --schemes SCHEMES`` (one
transformers pass, then each scheme quantized and validated), then ``sweep --schemes F32``, whose
reference comes from that cache. Each writes its sweep.json, whose rows are recorded as they are.
The figures are deterministic, so ``--repeat 1`` is enough; more repeats re-time both runs on a
fresh cache (the figures are recorded from the last repeat).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from report import ROOT, render_results  # noqa: E402

BENCH = "sweep_tiny"
SCHEMES = "Q2_K,Q3_K_M,Q4_K_M,Q5_K_M,Q6_K,Q8_0"
FLOAT_SCHEME = "F32"


def sweep_command(checkpoint: Path, schemes: str, out: Path, cache: Path, ctx: int, chunks: int) -> list[str]:
    return [sys.executable, "-m", "gemma3n_gguf", "sweep", str(checkpoint), "--schemes", schemes, "-o", str(out),
            "--ctx", str(ctx), "--chunks", str(chunks), "--cache-dir", str(cache), "--delete-models",
            "--reference-mode", "memory", "--json"]


def main() -> None:
    parser = bench_parser(__doc__, default_preset="tiny-text")
    parser.add_argument("--schemes", default=SCHEMES, help=f"the sweep's schemes (default {SCHEMES})")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=4, help="windows of the built-in evaluation text")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "sweep-tiny-text.png",
                        help="where to copy the sweep's plot (default: the README's image)")
    parser.set_defaults(repeat=1)
    args = parser.parse_args()
    work = args.workdir / f"sweep-{args.preset}"
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    runs, sweeps = [], {}
    for repeat in range(args.repeat):
        shutil.rmtree(work, ignore_errors=True)  # a fresh reference cache each repeat
        work.mkdir(parents=True)
        for role, schemes in (("sweep", args.schemes), ("sweep_f32", FLOAT_SCHEME)):
            out = work / role
            label = f"gemma3n-gguf sweep --schemes {schemes}"
            print(f"[{repeat + 1}/{args.repeat}] {label}", flush=True)
            command = sweep_command(ckpt, schemes, out, work / "reference-cache", args.ctx, args.chunks)
            measured = run_measured(label, command, str(work / f"{role}.log"))
            runs.append(measured.record(role, repeat))
            if measured.returncode != 0:
                sys.exit(f"{label} failed (exit {measured.returncode}): see {work / f'{role}.log'}")
            sweeps[role] = json.loads((out / "sweep.json").read_text())
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "sweep" / "sweep.png", args.plot)
    checks = {"checkpoint": args.preset, "plot": str(args.plot), **{role: {key: value for key, value in sweep.items()
                                                                         if key not in ("outputs", "checkpoint")}
                                                                  for role, sweep in sweeps.items()}}
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())), f"\nwrote {path}", sep="\n")


if __name__ == "__main__":
    main()
