"""Does validating a real-size model fit in 3 GiB? ``validate``, ``sweep`` and ``imatrix`` on a real-size
preset, each run inside a memory cgroup whose limit is the bound (confine.py), so that the kernel holds
it there. Results in bench/results/validate_confined.json.

    python bench/validate_confined.py [--repeat 1] [--preset e2b-shape] [--roles validate,sweep,imatrix]
                                      [--bound-gib 3] [--ctx 512] [--chunks 4]
    python bench/validate_confined.py --also e4b-shape --roles validate --append  # add e4b-shape to the file

Unconfined, a run's peak RSS also counts every page of the candidate GGUF that llama.cpp maps, which the
kernel leaves in place while memory is free (bench/validate_e2b.py records that peak): it says what the run
used on this 24 GiB machine, not what it needs. Confined, the kernel reclaims those file pages when the
limit is reached and kills the run if its anonymous memory alone does not fit. The checkpoint, the GGUF
and the Python installation (torch's and llama.cpp's libraries are mapped) are dropped from the page cache
before each run, so that the run is charged for reading them; pages another process has mapped cannot be
dropped (they stay charged to it but count in this run's RSS), so run it with no other Python process
that has torch or llama.cpp loaded. A role is
within the bound when every run of it exited 0 and its peak RSS (VmHWM, file pages included) is at most
the bound.

The commands are bench/validate_e2b.py's (same windows, streamed reference, empty reference caches);
the Q4_K_M GGUF is the one it quantizes (WORKDIR/PRESET-Q4_K_M.gguf), made here, unconfined, if missing.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from confine import ConfinementUnavailable, MemoryCgroup, evict_from_page_cache  # noqa: E402
from harness import bench_parser, ensure_checkpoint, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from validate_e2b import BOUNDED, GIB, IMATRIX, QUANTIZE, SCHEME, SWEEP, VALIDATE, _last_json  # noqa: E402
from validate_e2b import bounded_commands, kept_results, quantize_command  # noqa: E402

BENCH = "validate_confined"
LABELS = {"validate": VALIDATE, "sweep": SWEEP, "imatrix": IMATRIX}


def main() -> None:
    parser = bench_parser(__doc__, default_preset="e2b-shape")
    parser.add_argument("--roles", default=",".join(BOUNDED), help=f"which of {', '.join(BOUNDED)} to run")
    parser.add_argument("--bound-gib", type=float, default=3.0, help="the memory cgroup's limit, in GiB")
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--sweep-schemes", default="Q4_K_M,Q5_K_M,Q8_0")
    parser.add_argument("--also", default="", help="more presets, comma-separated, measured after --preset")
    parser.add_argument("--append", action="store_true",
                        help="keep --preset's runs from its results file and measure only the --also presets")
    args = parser.parse_args()
    roles = [role for role in args.roles.split(",") if role]
    if unknown := sorted(set(roles) - set(BOUNDED)):
        sys.exit(f"--roles: unknown {', '.join(unknown)} (choose from {', '.join(BOUNDED)})")
    bound = int(args.bound_gib * GIB)
    try:
        MemoryCgroup(bound).close()  # before hours of work: can this machine confine a run at all?
    except ConfinementUnavailable as exc:
        sys.exit(f"validate_confined: {exc}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    presets = [args.preset, *(p for p in args.also.split(",") if p and p != args.preset)]
    runs, checks = [], {"scheme": SCHEME, "ctx": args.ctx, "chunks": args.chunks, "bound_bytes": bound}
    if args.append:
        if len(presets) == 1:
            sys.exit("--append: name the presets to add with --also")
        runs, checks = kept_results(args, BENCH, presets[1:], checks)
        presets = presets[1:]
    for preset in presets:
        preset_runs = measure_preset(args, preset, roles, bound)
        runs += preset_runs
        checks[preset] = {**preset_checks(preset_runs, roles, bound), "command": shlex.join(["python", *sys.argv]),
                          "repeat": args.repeat}
    path = write_results(BENCH, args, runs, checks)
    for run in runs:
        print(f"{run['preset']:<10} {run['tool']:<70} exit {run['exit']:>3} {run['wall_s']:>8.1f} s "
              f"{run['peak_rss_bytes'] / GIB:>6.2f} GiB")
    print(f"wrote {path}")


def measure_preset(args: argparse.Namespace, preset: str, roles: list[str], bound: int) -> list[dict]:
    ckpt = ensure_checkpoint(args.workdir, preset)
    quantized = args.workdir / f"{preset}-{SCHEME}.gguf"
    runs = []
    if not quantized.is_file():
        runs.append(run_measured(QUANTIZE, quantize_command(ckpt, quantized), str(args.workdir / "quantize.log"),
                                 output=quantized).record("quantize", 0, preset=preset))
    for repeat in range(args.repeat):
        cache = args.workdir / f"confined-cache-{preset}-{repeat}"
        shutil.rmtree(cache, ignore_errors=True)  # empty: the reference pass runs in every confined run
        commands = bounded_commands(args, ckpt, quantized, cache, preset)
        for role in roles:
            print(f"[{repeat + 1}/{args.repeat}] {preset}: {role} in a {bound / GIB:g} GiB memory cgroup", flush=True)
            # the interpreter and its packages too: torch's and llama.cpp's libraries are mapped
            evict_from_page_cache([ckpt, quantized, Path(sys.prefix)])
            log = args.workdir / f"{preset}-confined-{role}.log"
            measured = run_measured(LABELS[role], commands[role], str(log), memory_limit=bound)
            report = {"report": _last_json(log)} if measured.returncode == 0 else {}
            runs.append(measured.record(role, repeat, preset=preset, **report))
    return runs


def preset_checks(runs: list[dict], roles: list[str], bound: int) -> dict:
    return {"within_bound": {role: all(run["exit"] == 0 and run["peak_rss_bytes"] <= bound
                                       for run in runs if run["role"] == role) for role in roles},
            "oom_kills": sum(run.get("oom_kills") or 0 for run in runs),
            "sweep_reference_runs": [run["report"]["reference_runs"] for run in runs
                                     if run["role"] == "sweep" and "report" in run]}


if __name__ == "__main__":
    main()
