"""Logit parity of tiny-text converted by gemma3n-gguf against transformers, per output type,
recorded in bench/results/parity_tiny.json (the README's "How it is checked" figures).

    python bench/parity_tiny.py [--repeat 1] [--preset tiny-text] [--outtypes f32,f16,bf16,q8_0]

Each ``gemma3n-gguf convert --outtype TYPE`` runs as its own measured process; then the file's
logits in llama.cpp (llama-cpp-python, F16 KV cache) on BOS + 399 random text-vocabulary ids (the
ids tests/conftest.py uses, long enough to cross the 64-token sliding window) are compared with
transformers' fp32 logits of the same ids by validate/metrics/parity.py and held against the
bounds of validate/metrics/bounds.py. The figures are deterministic, so ``--repeat 1`` is enough;
more repeats only re-time the conversions (parity is computed on the first repeat's files).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from report import render_results  # noqa: E402

BENCH = "parity_tiny"
OUTTYPES = ("f32", "f16", "bf16", "q8_0")
PARITY_TOKENS, PARITY_SEED = 400, 1234  # as tests/conftest.py's parity_ids
N_CTX = 512


def parity_ids() -> np.ndarray:
    """BOS then random text-vocabulary ids."""
    rng = np.random.default_rng(PARITY_SEED)
    return np.concatenate([[2], rng.integers(10, 1024, PARITY_TOKENS - 1)]).astype(np.int64)


def parity_of(gguf: Path, outtype: str, reference_logits: np.ndarray, ids: np.ndarray) -> dict:
    from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
    from gemma3n_gguf.validate.metrics.bounds import PARITY_BOUNDS
    from gemma3n_gguf.validate.metrics.parity import parity_stats

    with LlamaCppRunner(gguf, n_ctx=N_CTX) as runner:
        stats = parity_stats(reference_logits, next(runner.iter_window_logits([ids])))
    bounds = PARITY_BOUNDS[outtype]
    return {"stats": stats.to_dict(), "bounds": bounds.to_dict(), "violations": bounds.violations(stats)}


def main() -> None:
    parser = bench_parser(__doc__, default_preset="tiny-text")
    parser.add_argument("--outtypes", default=",".join(OUTTYPES), help="comma-separated (default: all four)")
    parser.set_defaults(repeat=1)
    args = parser.parse_args()
    outtypes = args.outtypes.split(",")
    work = args.workdir / f"parity-{args.preset}"
    work.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    runs = []
    for repeat in range(args.repeat):
        for outtype in outtypes:
            out = work / f"{args.preset}-{outtype}.gguf"
            label = f"gemma3n-gguf convert --outtype {outtype}"
            print(f"[{repeat + 1}/{args.repeat}] {label}", flush=True)
            measured = run_measured(label, [sys.executable, "-m", "gemma3n_gguf", "convert", str(ckpt), "-o", str(out),
                                            "--outtype", outtype, "--json"], str(work / f"convert-{outtype}.log"),
                                    output=out)
            runs.append(measured.record(f"convert_{outtype}", repeat, outtype=outtype))
            if measured.returncode != 0:
                sys.exit(f"{label} failed (exit {measured.returncode}): see {work / f'convert-{outtype}.log'}")
            if repeat + 1 < args.repeat:
                out.unlink()
    from gemma3n_gguf.reference.runners import TransformersRunner

    ids = parity_ids()
    reference_logits = next(TransformersRunner(ckpt).iter_window_logits([ids]))
    checks = {"tokens": len(ids), "seed": PARITY_SEED, "n_ctx": N_CTX,
              "parity": {outtype: parity_of(work / f"{args.preset}-{outtype}.gguf", outtype, reference_logits, ids)
                         for outtype in outtypes}}
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())), f"\nwrote {path}", sep="\n")


if __name__ == "__main__":
    main()
