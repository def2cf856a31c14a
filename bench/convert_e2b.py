"""Convert the e2b-shape checkpoint with gemma3n-gguf and with llama.cpp's reference converter
(`convert_hf_to_gguf.py --outtype bf16`, from the llama-cpp-python 0.3.36 sdist), side by side in
one run, REPEAT times each, and record every run in bench/results/convert_e2b.json.

    python bench/convert_e2b.py [--repeat 3] [--preset e2b-shape] [--compare] [--skip-reference]

The checkpoint (Google-style saving so both converters produce a complete file; its parameters and
bytes are recorded in the results' checks) is built once in WORKDIR and reused. Each converter runs alone, as a child process; the repeats
alternate between the two tools. The reference converter needs about 20 GiB of RAM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, warm_page_cache, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from peers import reference_convert_command  # noqa: E402
from report import render_results  # noqa: E402

BENCH = "convert_e2b"
OURS = "gemma3n-gguf convert --outtype bf16"
REFERENCE = "llama.cpp convert_hf_to_gguf.py --outtype bf16"


def main() -> None:
    parser = bench_parser(__doc__, default_preset="e2b-shape")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--compare", action="store_true",
                        help="also check (first repeat) that both files hold the same tensors, byte for byte")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    warm_page_cache(ckpt)
    ours_out, ref_out = args.workdir / "ours-bf16.gguf", args.workdir / "reference-bf16.gguf"
    runs, checks = [], {"checkpoint": checkpoint_size(ckpt)}
    for repeat in range(args.repeat):
        print(f"[{repeat + 1}/{args.repeat}] {OURS}", flush=True)
        ours = run_measured(OURS, [sys.executable, "-m", "gemma3n_gguf", "convert", str(ckpt), "-o", str(ours_out),
                                   "--outtype", "bf16", "--json"], str(args.workdir / "ours.log"), output=ours_out)
        runs.append(ours.record("ours", repeat))
        if not args.skip_reference:
            print(f"[{repeat + 1}/{args.repeat}] {REFERENCE}", flush=True)
            ref = run_measured(REFERENCE, reference_convert_command(ckpt, ref_out, "bf16"),
                               str(args.workdir / "reference.log"), output=ref_out)
            runs.append(ref.record("peer_convert", repeat))
            if args.compare and repeat == 0 and ours.returncode == ref.returncode == 0:
                checks["tensors"] = compare_tensors(ours_out, ref_out)
        ref_out.unlink(missing_ok=True)
        ours_out.unlink(missing_ok=True)
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())), f"\nwrote {path}", sep="\n")


def checkpoint_size(checkpoint: Path) -> dict:
    """What both converters read: the checkpoint's parameters and its safetensors bytes on disk."""
    from math import prod

    from gemma3n_gguf.core.checkpoint import Checkpoint

    tensors = Checkpoint(checkpoint).tensors.values()
    return {"parameters": sum(prod(t.shape) for t in tensors),
            "safetensors_bytes": sum(path.stat().st_size for path in checkpoint.glob("*.safetensors"))}


def compare_tensors(ours: Path, reference: Path) -> dict:
    """Same tensor names, types, shapes and bytes (the order and metadata may differ)."""
    from gguf import GGUFReader

    a = {t.name: t for t in GGUFReader(ours).tensors}
    b = {t.name: t for t in GGUFReader(reference).tensors}
    differ = [n for n in sorted(a.keys() & b.keys())
              if a[n].tensor_type != b[n].tensor_type or list(a[n].shape) != list(b[n].shape)
              or not (a[n].data == b[n].data).all()]
    return {"tensors": len(a), "only_ours": sorted(a.keys() - b.keys()), "only_reference": sorted(b.keys() - a.keys()),
            "identical": len(a.keys() & b.keys()) - len(differ), "different": differ}


if __name__ == "__main__":
    main()
