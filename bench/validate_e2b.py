"""Validate real-size models on this machine: e2b-shape and e4b-shape, each quantized to Q4_K_M in one
pass and validated against its fp32 reference with the layer-streamed transformers model, REPEAT times;
beside it, llama.cpp's base-logits pass (what ``llama-perplexity --kl-divergence-base`` computes) on
the same windows with an F16 GGUF of the same checkpoint. Results in bench/results/validate_e2b.json.

    python bench/validate_e2b.py [--repeat 3] [--preset e2b-shape] [--also e4b-shape] [--ctx 512] [--chunks 4]
    python bench/validate_e2b.py --also e4b-shape --append   # add e4b-shape to e2b-shape's results file

Per preset and repeat, each a measured child process:

1. ``gemma3n-gguf quantize CKPT --scheme Q4_K_M`` (once, repeat 0; role ``quantize``);
2. ``gemma3n-gguf validate Q4_K_M.gguf --reference CKPT --ctx 512 --chunks 4 --reference-mode streamed``
   with an empty reference cache (role ``validate``): its report gives the reference pass's own wall
   time and peak memory; the process's peak RSS is held to ``--bound-gib`` (3 GiB);
3. ``gemma3n-gguf convert CKPT --outtype f16`` (once, repeat 0; role ``peer_f16_convert``), then
   llama.cpp's F16 pass over the same windows through llama-cpp-python (role ``peer_f16_base``:
   model load and logits of every window, timed apart);
4. once (repeat 0), on ``--preset`` only (the acceptance asks them of e2b-shape):
   ``gemma3n-gguf sweep CKPT --schemes Q4_K_M,Q5_K_M,Q8_0 --reference-mode streamed`` (role ``sweep``:
   one reference pass for three schemes) and ``gemma3n-gguf imatrix CKPT --reference-mode streamed``
   on the same text and windows (role ``imatrix``).

``checks`` holds, per preset, the reference pass time against llama.cpp's F16 pass, whether every
validate, sweep and imatrix run stayed within the bound, the sweep's count of reference passes, and
the command that measured it. The e2b-shape checkpoint needs ~11 GB of disk, e4b-shape ~15 GB, their
F16 GGUFs (deleted after the F16 passes) as much again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, results_path, warm_page_cache, write_results  # noqa: E402
from measure import run_measured  # noqa: E402

BENCH = "validate_e2b"
SCHEME = "Q4_K_M"
GIB = 2**30
SWEEP = "gemma3n-gguf sweep --reference-mode streamed"
IMATRIX = "gemma3n-gguf imatrix --reference-mode streamed"
EVAL_TEXT = Path(__file__).resolve().parent.parent / "gemma3n_gguf" / "data" / "eval-text.txt"
QUANTIZE = "gemma3n-gguf quantize --scheme Q4_K_M (one pass)"
VALIDATE = "gemma3n-gguf validate --reference-mode streamed (reference pass + Q4_K_M pass)"
CONVERT_F16 = "gemma3n-gguf convert --outtype f16"
PEER_BASE = "llama.cpp F16 base logits (llama-cpp-python)"
CLI = [sys.executable, "-m", "gemma3n_gguf"]
BOUNDED = ("validate", "sweep", "imatrix")


def main() -> None:
    parser = bench_parser(__doc__, default_preset="e2b-shape")
    parser.add_argument("--also", default="e4b-shape", help="comma-separated further presets ('' for none)")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--bound-gib", type=float, default=3.0, help="peak RSS bound of validate, sweep and imatrix")
    parser.add_argument("--sweep-schemes", default="Q4_K_M,Q5_K_M,Q8_0", help="schemes of the sweep run ('' skips it)")
    parser.add_argument("--append", action="store_true",
                        help="keep --preset's runs from its results file and measure only the --also presets")
    parser.add_argument("--f16-base-pass", nargs=2, type=Path, metavar=("GGUF", "CKPT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.f16_base_pass:
        print(json.dumps(f16_base_pass(*args.f16_base_pass, n_ctx=args.ctx, chunks=args.chunks)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    presets = [args.preset, *(p for p in args.also.split(",") if p and p != args.preset)]
    runs, checks = [], {"scheme": SCHEME, "ctx": args.ctx, "chunks": args.chunks, "bound_bytes": int(args.bound_gib * GIB)}
    if args.append:
        runs, checks = kept_results(args, BENCH, presets[1:], checks)
        presets = presets[1:]
    for preset in presets:
        preset_runs = measure_preset(args, preset)
        runs += preset_runs
        checks[preset] = {**preset_checks(preset_runs, int(args.bound_gib * GIB)), "command": shlex.join(["python", *sys.argv]),
                          "repeat": args.repeat}
    path = write_results(BENCH, args, runs, checks)
    print(json.dumps(checks, indent=1), f"\nwrote {path}", sep="\n")


def kept_results(args: argparse.Namespace, bench: str, measured: list[str], checks: dict) -> tuple[list[dict], dict]:
    """The runs and per-preset checks of ``bench``'s earlier results file, minus the presets measured now;
    each kept preset's checks name the command that measured it."""
    path = results_path(args.results_dir, bench, args.preset, args.default_preset)
    earlier = json.loads(path.read_text())
    settings = ("scheme", "ctx", "chunks", "bound_bytes")
    if any(earlier["checks"][key] != checks[key] for key in settings):
        sys.exit(f"--append: {path} was measured with other {', '.join(settings)}")
    kept = {key: {"command": earlier["command"], "repeat": earlier["repeat"], **value}
            for key, value in earlier["checks"].items() if isinstance(value, dict) and key not in measured}
    return [run for run in earlier["runs"] if run["preset"] in kept], {**checks, **kept}


def measure_preset(args: argparse.Namespace, preset: str) -> list[dict]:
    work = args.workdir
    ckpt = ensure_checkpoint(work, preset)
    warm_page_cache(ckpt)
    quantized, f16 = work / f"{preset}-{SCHEME}.gguf", work / f"{preset}-F16.gguf"
    runs = []

    def measured(role: str, label: str, cmd: list[str], repeat: int, output: Path | None = None) -> dict:
        print(f"[{preset} {repeat + 1}/{args.repeat}] {label}", flush=True)
        log = work / f"{preset}-{role}.log"
        result = run_measured(label, cmd, str(log), output=output)
        extra = {"preset": preset}
        if role in ("validate", "peer_f16_base", *BOUNDED) and result.returncode == 0:
            extra["report"] = _last_json(log)
        run = result.record(role, repeat, **extra)
        runs.append(run)
        return run

    window_options = ["--ctx", str(args.ctx), "--chunks", str(args.chunks)]
    for repeat in range(args.repeat):
        if repeat == 0:
            measured("quantize", QUANTIZE, quantize_command(ckpt, quantized), repeat, quantized)
            measured("peer_f16_convert", CONVERT_F16, [*CLI, "convert", str(ckpt), "--outtype", "f16", "-o", str(f16)],
                     repeat, f16)
        bounded = bounded_commands(args, ckpt, quantized, work / f"reference-cache-{preset}-{repeat}", preset)
        measured("validate", VALIDATE, bounded["validate"], repeat)
        measured("peer_f16_base", PEER_BASE, [sys.executable, __file__, "--f16-base-pass", str(f16), str(ckpt),
                                              *window_options], repeat)
    f16.unlink()  # ~9 GB (e2b-shape) to 15 GB (e4b-shape) of disk
    if preset != args.preset:  # sweep and imatrix: on the main preset only
        quantized.unlink()
        return runs
    if "sweep" in bounded:
        measured("sweep", SWEEP, bounded["sweep"], 0)
    measured("imatrix", IMATRIX, bounded["imatrix"], 0)
    return runs


def quantize_command(ckpt: Path, quantized: Path) -> list[str]:
    return [*CLI, "quantize", str(ckpt), "-o", str(quantized), "--scheme", SCHEME, "--json"]


def bounded_commands(args: argparse.Namespace, ckpt: Path, quantized: Path, cache: Path, preset: str) -> dict:
    """The commands held to the memory bound, by role: validate and sweep (unless --sweep-schemes
    is empty) with reference caches under ``cache``, which must not exist yet (the reference pass
    runs), and imatrix. The candidate passes run with --no-repack (llama.cpp's option): repacking
    keeps a second copy of the quantized matrices in anonymous memory, which does not fit the bound."""
    work, windows = args.workdir, ["--ctx", str(args.ctx), "--chunks", str(args.chunks)]
    commands = {
        "validate": [*CLI, "validate", str(quantized), "--reference", str(ckpt), *windows, "--no-repack",
                     "--cache-dir", str(cache / "validate"), "--reference-mode", "streamed", "--json"],
        "imatrix": [*CLI, "imatrix", str(ckpt), "--text", str(EVAL_TEXT), *windows,
                    "-o", str(work / f"{preset}-imatrix.gguf"), "--reference-mode", "streamed", "--json"],
    }
    if args.sweep_schemes:
        commands["sweep"] = [*CLI, "sweep", str(ckpt), "--schemes", args.sweep_schemes, "-o", str(work / "sweep"),
                             *windows, "--no-repack", "--cache-dir", str(cache / "sweep"), "--delete-models",
                             "--reference-mode", "streamed", "--json"]
    return commands


def f16_base_pass(gguf: Path, checkpoint: Path, *, n_ctx: int, chunks: int) -> dict:
    """llama.cpp's logits for the windows the validator evaluates (its tokens, BOS rule and windows)."""
    from gemma3n_gguf.reference.evaltext import load_eval_text
    from gemma3n_gguf.reference.llama_runner import LlamaCppRunner
    from gemma3n_gguf.reference.windows import plan_windows
    from gemma3n_gguf.validate.compat import ReferenceInfo
    from gemma3n_gguf.validate.tokens import reference_token_ids

    ids = reference_token_ids(checkpoint, load_eval_text(None).text)
    bos = ReferenceInfo.read(checkpoint).bos_id
    plan = plan_windows(ids, n_ctx, bos_id=bos if bos is not None and int(ids[0]) == bos else None, chunks=chunks)
    started = time.perf_counter()
    with LlamaCppRunner(gguf, n_ctx=n_ctx) as runner:
        loaded = time.perf_counter()
        rows = sum(len(logits) for logits in runner.iter_window_logits(plan.evaluated_windows(), first_row=n_ctx // 2))
        finished = time.perf_counter()
    return {"windows": len(plan), "rows": rows, "load_s": round(loaded - started, 3),
            "pass_s": round(finished - loaded, 3)}


def preset_checks(runs: list[dict], bound: int) -> dict:
    validates = [run for run in runs if run["role"] == "validate"]
    bases = [run for run in runs if run["role"] == "peer_f16_base"]
    bounded = [run for run in runs if run["role"] in BOUNDED]
    sweeps = [run for run in runs if run["role"] == "sweep"]
    reference_s = [run["report"]["reference"]["seconds"] for run in validates if "report" in run]
    base_s = [run["report"]["load_s"] + run["report"]["pass_s"] for run in bases if "report" in run]
    return {
        "validate_exit_ok": all(run["exit"] == 0 for run in validates),
        "validate_peak_rss_bytes": max((run["peak_rss_bytes"] for run in validates), default=None),
        "within_bound": {role: all(run["exit"] == 0 and run["peak_rss_bytes"] <= bound for run in bounded
                                   if run["role"] == role) for role in sorted({run["role"] for run in bounded})},
        "sweep_reference_runs": [run["report"]["reference_runs"] for run in sweeps if "report" in run],
        "reference_modes": sorted({run["report"]["reference"]["mode"] for run in validates if "report" in run}),
        "reference_pass_s": min(reference_s, default=None),
        "reference_pass_peak_rss_bytes": max((run["report"]["reference"]["peak_rss_bytes"] for run in validates
                                              if "report" in run), default=None),
        "llama_f16_base_s": min(base_s, default=None),
        "reference_over_llama_f16": (min(reference_s) / min(base_s)) if reference_s and base_s else None,
    }


def _last_json(log: Path) -> dict:
    """The JSON document a child printed last (its log also holds whatever it wrote to stderr)."""
    text = log.read_text()
    start = text.rfind("\n{")
    return json.JSONDecoder().raw_decode(text[start + 1 if start >= 0 else text.index("{"):])[0]


if __name__ == "__main__":
    main()
