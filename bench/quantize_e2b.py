"""Quantize the e2b-shape checkpoint to Q4_K_M three ways in one run, and print them side by side:

1. ours: ``gemma3n-gguf quantize CHECKPOINT --scheme Q4_K_M`` (one pass, no intermediate file);
2. llama.cpp's two steps: ``convert_hf_to_gguf.py --outtype bf16`` (from the llama-cpp-python 0.3.36
   sdist), then ``llama_model_quantize`` with all cores (llama-quantize's library entry point);
3. the kernel floor: the time ggml's kernels alone need for the same tensors and types (real rows
   of each tensor, all cores, no reading or writing).

    python bench/quantize_e2b.py [--workdir DIR] [--scheme Q4_K_M] [--keep]

Ours runs with ``--intermediate bf16`` (default of ``--intermediate`` here): it then writes what
``convert --outtype bf16`` + llama-quantize writes, the same computation as the two steps, so the
tensors llama-quantize keeps (AltUp, LAuReL, per_layer_model_proj) are BF16 in both files. With
``--intermediate f32`` they are F32 in ours and only their values are compared.

Each step runs alone as a child process (wall time, peak RSS of that process). At the end the two
output files are compared tensor by tensor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from convert_e2b import ensure_checkpoint  # noqa: E402
from measure import Measurement, run_measured  # noqa: E402
from peers import reference_convert_command  # noqa: E402

console = Console()

LLAMA_QUANTIZE = """
import ctypes, sys, llama_cpp
from gemma3n_gguf.quantize.schemes import get_scheme
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = int(get_scheme(sys.argv[3]).ftype)
params.nthread = 0  # all cores (std::thread::hardware_concurrency)
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def kernel_floor(checkpoint: Path, scheme: str) -> float:
    """Seconds ggml's kernels need for every converted tensor of the plan, on real rows, all cores."""
    from gemma3n_gguf.core.ggml import quantize_rows
    from gemma3n_gguf.engine.inputs import CheckpointInput
    from gemma3n_gguf.quantize.onepass import plan_quantization

    plan = plan_quantization(checkpoint, scheme=scheme)
    source = CheckpointInput(checkpoint)
    slab_bytes = 32 << 20
    total = 0.0
    for tensor in plan.tensors:
        if not tensor.converted:
            continue
        n_units, unit_values = source.units(tensor.name)
        n_rows = n_units * unit_values // tensor.shape[0]
        slab = source.values(tensor.name, 0, max(1, min(n_units, slab_bytes // (4 * unit_values))))
        for start in range(0, n_rows, len(slab)):
            rows = slab[: min(len(slab), n_rows - start)]
            began = time.perf_counter()
            quantize_rows(rows, tensor.qtype)
            total += time.perf_counter() - began
    return total


def warm_page_cache(checkpoint: Path) -> None:
    """Read the checkpoint once so that no run pays for a cold disk the others do not."""
    for path in sorted(checkpoint.glob("*.safetensors")):
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass


def compare_outputs(ours: Path, theirs: Path) -> dict:
    from gguf import GGUFReader
    from gguf import GGMLQuantizationType as T

    a, b = ({t.name: t for t in GGUFReader(p).tensors} for p in (ours, theirs))
    result = {"same_names": set(a) == set(b), "identical": 0, "same_values_other_type": 0, "different": []}
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if x.tensor_type == y.tensor_type and np.array_equal(np.asarray(x.data).view(np.uint8), np.asarray(y.data).view(np.uint8)):
            result["identical"] += 1
        elif {T(x.tensor_type), T(y.tensor_type)} <= {T.F32, T.BF16, T.F16} and np.array_equal(_floats(x), _floats(y)):
            result["same_values_other_type"] += 1
        else:
            result["different"].append(name)
    return result


def _floats(tensor) -> np.ndarray:
    from gguf import GGMLQuantizationType as T

    data = np.asarray(tensor.data)
    if T(tensor.tensor_type) == T.BF16:
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(-1)
    return data.astype(np.float32).reshape(-1)


def _measured(label: str, cmd: list[str], log: Path, output: Path | None) -> Measurement:
    console.print(f"[bold]running[/bold] {label}")
    return run_measured(label, cmd, str(log), output=output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench/.work"))
    parser.add_argument("--preset", default="e2b-shape")
    parser.add_argument("--scheme", default="Q4_K_M")
    parser.add_argument("--intermediate", default="bf16", choices=("f32", "f16", "bf16"))
    parser.add_argument("--keep", action="store_true", help="keep the output files")
    parser.add_argument("--kernel-floor", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.kernel_floor:
        print(json.dumps({"seconds": kernel_floor(args.kernel_floor, args.scheme)}))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    work = args.workdir
    ours_out, bf16_out, theirs_out = (work / f"ours-{args.scheme}.gguf", work / "reference-bf16.gguf",
                                      work / f"reference-{args.scheme}.gguf")
    warm_page_cache(ckpt)
    ours = _measured(f"gemma3n-gguf quantize (one pass, --intermediate {args.intermediate})", [sys.executable, "-m", "gemma3n_gguf", "quantize", str(ckpt),
                     "-o", str(ours_out), "--scheme", args.scheme, "--intermediate", args.intermediate, "--json"],
                     work / "ours-quantize.log", ours_out)
    convert = _measured("convert_hf_to_gguf.py --outtype bf16", reference_convert_command(ckpt, bf16_out, "bf16"),
                        work / "reference-convert.log", bf16_out)
    llama_q = _measured("llama_model_quantize (all cores)",
                        [sys.executable, "-c", LLAMA_QUANTIZE, str(bf16_out), str(theirs_out), args.scheme],
                        work / "reference-quantize.log", theirs_out)
    bf16_out.unlink(missing_ok=True)
    floor_run = _measured("kernel floor", [sys.executable, __file__, "--kernel-floor", str(ckpt), "--scheme", args.scheme],
                          work / "kernel-floor.log", None)
    floor = json.loads((work / "kernel-floor.log").read_text().strip().splitlines()[-1])["seconds"]
    comparison = compare_outputs(ours_out, theirs_out) if ours.returncode == llama_q.returncode == 0 else None
    report(ours, convert, llama_q, floor, floor_run, comparison)
    if not args.keep:
        ours_out.unlink(missing_ok=True)
        theirs_out.unlink(missing_ok=True)


def report(ours: Measurement, convert: Measurement, llama_q: Measurement, floor: float, floor_run: Measurement,
           comparison: dict | None) -> None:
    table = Table("run", "exit", "wall time (s)", "peak RSS (GiB)", "output (GiB)",
                  title=f"e2b-shape -> quantized GGUF, one run, {os.cpu_count()} cores")

    def size(m: Measurement) -> str:
        return f"{m.output_bytes / 2**30:.3f}" if m.output_bytes else "-"

    for m in (ours, convert, llama_q):
        table.add_row(m.label, str(m.returncode), f"{m.seconds:.1f}", f"{m.peak_rss_gib:.2f}", size(m))
    two_steps = convert.seconds + llama_q.seconds
    table.add_row("[bold]llama.cpp two steps (total)", str(convert.returncode or llama_q.returncode), f"{two_steps:.1f}",
                  f"{max(convert.peak_rss_gib, llama_q.peak_rss_gib):.2f}", size(llama_q), end_section=True)
    table.add_row("kernel floor (kernels only)", str(floor_run.returncode), f"{floor:.1f}", "-", "-")
    console.print(table)
    console.print(f"ours / kernel floor: {ours.seconds / floor:.3f} (target <= 1.10); "
                  f"two steps / ours: {two_steps / ours.seconds:.2f}x; ours peak RSS {ours.peak_rss_gib:.2f} GiB "
                  "(target <= 2 GiB)")
    if comparison is not None:
        console.print(f"tensors: same names {comparison['same_names']}; identical bytes {comparison['identical']}; "
                      f"same values in another float type {comparison['same_values_other_type']}; "
                      f"different {len(comparison['different'])} {comparison['different'][:5]}")


if __name__ == "__main__":
    main()
