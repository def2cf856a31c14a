"""Render the README's benchmark sections from the results files under bench/results/: per tool,
the median of the repeats with their min-max, and the machine and command that produced them.

    python bench/report.py            # rewrite README.md between <!-- bench:NAME --> markers
    python bench/report.py --check    # exit 1 if README.md disagrees with the results files

Only ``NAME.json`` (the real-size preset) is rendered; smoke runs on tiny presets are written as
``NAME.PRESET.json`` and never reach the README.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Callable

from renderers.cells import machine_line
from renderers.quality import render_audio, render_exact_mm, render_imatrix_peer, render_parity, render_sweep
from renderers.real_size import render_confined, render_convert, render_package, render_quantize, render_validate
from renderers.slicing import render_slice
from renderers.suite import render_ci_time

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
README = ROOT / "README.md"

# How to produce each results file (printed where none is recorded yet, and in bench/README.md).
COMMANDS = {
    "convert_e2b": "python bench/convert_e2b.py --repeat 3 --compare",
    "quantize_e2b": "python bench/quantize_e2b.py --repeat 3",
    "validate_e2b": "python bench/validate_e2b.py --repeat 3",
    "validate_confined": "python bench/validate_confined.py --repeat 1",
    "audio_encode": "python bench/audio_encode.py --repeat 3",
    "package_e2b": "python bench/package_e2b.py --repeat 1",
    "slice_e4b": "python bench/slice_e4b.py --repeat 1",
    "parity_tiny": "python bench/parity_tiny.py --repeat 1",
    "sweep_tiny": "python bench/sweep_tiny.py --repeat 1",
    "exact_mm_tiny": "python bench/exact_mm_tiny.py --repeat 1",
    "imatrix_peer": "python bench/imatrix_peer.py --repeat 1",
    "ci_time": "python bench/ci_time.py --repeat 2",
}


# Each results file's renderer (bench/renderers/): its lines below the machine line.
RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "convert_e2b": render_convert,
    "quantize_e2b": render_quantize,
    "validate_e2b": render_validate,
    "validate_confined": render_confined,
    "package_e2b": render_package,
    "slice_e4b": render_slice,
    "audio_encode": render_audio,
    "parity_tiny": render_parity,
    "sweep_tiny": render_sweep,
    "exact_mm_tiny": render_exact_mm,
    "imatrix_peer": render_imatrix_peer,
    "ci_time": render_ci_time,
}


def render(bench: str, results_dir: Path = RESULTS_DIR) -> str:
    path = results_dir / f"{bench}.json"
    if not path.is_file():
        return (f"No results recorded yet: run `{COMMANDS[bench]}` on a quiet machine, "
                "then `python bench/report.py`.")
    return render_results(json.loads(path.read_text()))


def render_results(results: dict) -> str:
    """One results file as the README shows it."""
    return "\n".join([machine_line(results), "", *RENDERERS[results["bench"]](results)])


def update_readme(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """``text`` with every ``<!-- bench:NAME -->`` section re-rendered from its results file."""
    def section(match: re.Match) -> str:
        return f"{match.group(1)}\n{render(match.group(2), results_dir)}\n{match.group(3)}"

    return re.sub(r"(<!-- bench:(\w+) -->)\n.*?\n?(<!-- /bench:\2 -->)", section, text, flags=re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the README is stale")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    current = args.readme.read_text()
    rendered = update_readme(current, args.results_dir)
    if rendered == current:
        print(f"{args.readme}: benchmark sections up to date")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), rendered.splitlines(True),
                                                   str(args.readme), "rendered"))
        return 1
    from gemma3n_gguf.core.atomic import write_text_atomically

    write_text_atomically(args.readme, rendered)
    print(f"{args.readme}: benchmark sections rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
