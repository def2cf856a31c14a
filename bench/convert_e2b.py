"""Convert the e2b-shape checkpoint with gemma3n-gguf and with llama.cpp's reference converter
(`convert_hf_to_gguf.py --outtype bf16`, from the llama-cpp-python 0.3.36 sdist) in one run,
and print wall time, peak RSS and output size side by side.

    python bench/convert_e2b.py [--workdir DIR] [--skip-reference]

The checkpoint (10.9 GB, Google-style saving so both converters produce a complete file) is
built once in WORKDIR and reused. Each converter runs alone, as a child process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from measure import Measurement, run_measured  # noqa: E402
from peers import reference_convert_command  # noqa: E402

console = Console()


def ensure_checkpoint(workdir: Path, preset: str) -> Path:
    ckpt = workdir / preset
    if not (ckpt / "model.safetensors.index.json").is_file():
        from gemma3n_gguf.fixtures import make_checkpoint

        with console.status(f"building {preset} (once)"):
            make_checkpoint(ckpt, preset, seed=0, saving="google", overwrite=True)
    return ckpt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work"))
    parser.add_argument("--preset", default="e2b-shape")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--compare", action="store_true",
                        help="also check that both files hold the same tensors, byte for byte")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)

    runs: list[Measurement] = []
    ours_out = args.workdir / "ours-bf16.gguf"
    ours = run_measured("gemma3n-gguf convert --outtype bf16",
                        [sys.executable, "-m", "gemma3n_gguf", "convert", str(ckpt), "-o", str(ours_out),
                         "--outtype", "bf16", "--json"], str(args.workdir / "ours.log"), output=ours_out)
    runs.append(ours)
    if not args.skip_reference:
        ref_out = args.workdir / "reference-bf16.gguf"
        ref = run_measured("llama.cpp convert_hf_to_gguf.py --outtype bf16",
                           reference_convert_command(ckpt, ref_out, "bf16"), str(args.workdir / "reference.log"),
                           output=ref_out)
        runs.append(ref)
        if args.compare and ours.returncode == ref.returncode == 0:
            console.print(compare_tensors(ours_out, ref_out))
        ref_out.unlink(missing_ok=True)
    ours_out.unlink(missing_ok=True)
    report(runs)


def compare_tensors(ours: Path, reference: Path) -> str:
    """Same tensor names, types, shapes and bytes (the order and metadata may differ)."""
    from gguf import GGUFReader

    a = {t.name: t for t in GGUFReader(ours).tensors}
    b = {t.name: t for t in GGUFReader(reference).tensors}
    if a.keys() != b.keys():
        return f"[red]tensor sets differ[/red]: only ours {sorted(a.keys() - b.keys())[:5]}, only reference {sorted(b.keys() - a.keys())[:5]}"
    differ = [n for n in a if a[n].tensor_type != b[n].tensor_type or list(a[n].shape) != list(b[n].shape)
              or not (a[n].data == b[n].data).all()]
    if differ:
        return f"[red]{len(differ)} of {len(a)} tensors differ[/red], e.g. {differ[:5]}"
    return f"[green]all {len(a)} tensors identical[/green] (names, types, shapes, bytes)"


def report(runs: list[Measurement]) -> None:
    table = Table("converter", "exit", "wall time (s)", "peak RSS (GiB)", "output (GiB)",
                  title="e2b-shape -> bf16 GGUF, same checkpoint, same machine, one run")
    for m in runs:
        size = f"{m.output_bytes / 2**30:.2f}" if m.output_bytes else "-"
        table.add_row(m.label, str(m.returncode), f"{m.seconds:.1f}", f"{m.peak_rss_gib:.2f}", size)
    console.print(table)
    if len(runs) == 2 and runs[0].returncode == runs[1].returncode == 0:
        ours, ref = runs
        console.print(f"speed: {ref.seconds / ours.seconds:.2f}x the reference; "
                      f"memory: {ours.peak_rss_gib:.2f} GiB vs {ref.peak_rss_gib:.2f} GiB "
                      f"(target: no slower, <= 2 GiB)")


if __name__ == "__main__":
    main()
