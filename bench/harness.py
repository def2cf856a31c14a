"""What every bench script shares: its command-line options, the checkpoint it measures, and the
results file it writes (one JSON per script under bench/results/, read by bench/report.py).

A run on a preset other than the script's real-size one is written as ``NAME.PRESET.json``
(git-ignored), so a smoke run can never stand in for the real figures in ``NAME.json``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from gemma3n_gguf.core.atomic import write_text_atomically
from machine import machine_record
from peers import SDIST

RESULTS_DIR = Path(__file__).parent / "results"
SCHEMA = 1

# Every results file holds these keys, and every run these fields (tests/test_bench_smoke.py checks them).
RESULT_FIELDS = ("schema", "bench", "source", "date", "command", "preset", "repeat", "peer", "machine", "runs",
                 "checks")
RUN_FIELDS = ("tool", "role", "repeat", "exit", "wall_s", "peak_rss_bytes", "peak_rss_anon_bytes", "peak_rss_file_bytes",
              "output_bytes")


def bench_parser(description: str, default_preset: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool (default 3)")
    parser.add_argument("--preset", default=default_preset,
                        help=f"checkpoint preset (default {default_preset}; tiny presets for smoke runs)")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work"), help="checkpoint and outputs")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.set_defaults(default_preset=default_preset)
    return parser


def ensure_checkpoint(workdir: Path, preset: str) -> Path:
    """The preset's checkpoint, Google-style saving so both converters write a complete file;
    built once in ``workdir`` and reused."""
    ckpt = workdir / preset
    if not (ckpt / "model.safetensors.index.json").is_file():
        from gemma3n_gguf.fixtures import make_checkpoint

        print(f"building {preset} in {ckpt} (once)", flush=True)
        make_checkpoint(ckpt, preset, seed=0, saving="google", overwrite=True)
    return ckpt


def warm_page_cache(checkpoint: Path) -> None:
    """Read the checkpoint once so that no run pays for a cold disk the others do not."""
    for path in sorted(checkpoint.glob("*.safetensors")):
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


def results_path(results_dir: Path, bench: str, preset: str, default_preset: str) -> Path:
    return results_dir / (f"{bench}.json" if preset == default_preset else f"{bench}.{preset}.json")


def write_results(bench: str, args: argparse.Namespace, runs: list[dict], checks: dict) -> Path:
    """The results file: the machine, the date, the exact command, and every run of every tool."""
    results = {
        "schema": SCHEMA,
        "bench": bench,
        "source": "measured",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "preset": args.preset,
        "repeat": args.repeat,
        "peer": SDIST,
        "machine": machine_record(),
        "runs": runs,
        "checks": checks,
    }
    path = results_path(args.results_dir, bench, args.preset, args.default_preset)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(results, indent=1) + "\n")
    return path
