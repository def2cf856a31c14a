"""Quantize the e2b-shape checkpoint to Q4_K_M three ways, side by side in one run, REPEAT times,
and record every run in bench/results/quantize_e2b.json:

1. ours: ``gemma3n-gguf quantize CHECKPOINT --scheme Q4_K_M`` (one pass, no intermediate file);
2. llama.cpp's two steps: ``convert_hf_to_gguf.py --outtype bf16`` (from the llama-cpp-python 0.3.36
   sdist), then ``llama_model_quantize`` with all cores (llama-quantize's library entry point);
3. the kernel floor: the time ggml's kernels alone need for the same tensors and types (real rows
   of each tensor, all cores, no reading or writing).

    python bench/quantize_e2b.py [--repeat 3] [--preset e2b-shape] [--scheme Q4_K_M] [--keep]

Ours runs with ``--intermediate bf16`` (default of ``--intermediate`` here): it then writes what
``convert --outtype bf16`` + llama-quantize writes, the same computation as the two steps, so the
tensors llama-quantize keeps (AltUp, LAuReL, per_layer_model_proj) are BF16 in both files. With
``--intermediate f32`` they are F32 in ours and only their values are compared.

Each step runs alone as a child process. After the first repeat the two quantized files are
compared tensor by tensor. The reference converter needs about 20 GiB of RAM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, warm_page_cache, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from peers import reference_convert_command  # noqa: E402
from report import render_results  # noqa: E402

BENCH = "quantize_e2b"
OURS = "gemma3n-gguf quantize --scheme {scheme} --intermediate {intermediate} (one pass)"
CONVERT = "llama.cpp convert_hf_to_gguf.py --outtype bf16"
LLAMA_Q = "then llama_model_quantize {scheme}, all cores"
FLOOR = "kernel floor (kernels only)"

LLAMA_QUANTIZE = """
import ctypes, sys, llama_cpp
from gemma3n_gguf.engine.schemes import get_scheme
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = int(get_scheme(sys.argv[3]).ftype)
params.nthread = 0  # all cores (std::thread::hardware_concurrency)
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)))
"""


def main() -> None:
    parser = bench_parser(__doc__, default_preset="e2b-shape")
    parser.add_argument("--scheme", default="Q4_K_M")
    parser.add_argument("--intermediate", default="bf16", choices=("f32", "f16", "bf16"))
    parser.add_argument("--keep", action="store_true", help="keep the quantized files of the last repeat")
    parser.add_argument("--kernel-floor", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.kernel_floor:
        print(json.dumps({"seconds": kernel_floor(args.kernel_floor, args.scheme)}))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    warm_page_cache(ckpt)
    ours_out, theirs_out = args.workdir / f"ours-{args.scheme}.gguf", args.workdir / f"reference-{args.scheme}.gguf"
    runs, checks = [], {"scheme": args.scheme, "intermediate": args.intermediate}
    for repeat in range(args.repeat):
        runs += one_round(args, ckpt, repeat, ours_out, theirs_out)
        if repeat == 0 and ours_out.exists() and theirs_out.exists():
            checks["tensors"] = compare_outputs(ours_out, theirs_out)
        if not args.keep or repeat + 1 < args.repeat:
            ours_out.unlink(missing_ok=True)
            theirs_out.unlink(missing_ok=True)
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())), f"\nwrote {path}", sep="\n")


def one_round(args: argparse.Namespace, ckpt: Path, repeat: int, ours_out: Path, theirs_out: Path) -> list[dict]:
    """Ours, llama.cpp's two steps, then the kernel floor: one measured child process each."""
    work, scheme = args.workdir, args.scheme
    bf16_out = work / "reference-bf16.gguf"

    def measured(label: str, cmd: list[str], log: str, output: Path | None):
        print(f"[{repeat + 1}/{args.repeat}] {label}", flush=True)
        return run_measured(label, cmd, str(work / log), output=output)

    ours = measured(OURS.format(scheme=scheme, intermediate=args.intermediate),
                    [sys.executable, "-m", "gemma3n_gguf", "quantize", str(ckpt), "-o", str(ours_out),
                     "--scheme", scheme, "--intermediate", args.intermediate, "--json"], "ours-quantize.log", ours_out)
    convert = measured(CONVERT, reference_convert_command(ckpt, bf16_out, "bf16"), "reference-convert.log", bf16_out)
    llama_q = measured(LLAMA_Q.format(scheme=scheme),
                       [sys.executable, "-c", LLAMA_QUANTIZE, str(bf16_out), str(theirs_out), scheme],
                       "reference-quantize.log", theirs_out)
    bf16_out.unlink(missing_ok=True)
    floor = measured(FLOOR, [sys.executable, __file__, "--kernel-floor", str(ckpt), "--scheme", scheme],
                     "kernel-floor.log", None)
    kernel_s = None
    if floor.returncode == 0:
        kernel_s = json.loads((work / "kernel-floor.log").read_text().strip().splitlines()[-1])["seconds"]
    return [ours.record("ours", repeat), convert.record("peer_convert", repeat),
            llama_q.record("peer_quantize", repeat), floor.record("kernel_floor", repeat, kernel_s=kernel_s)]


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


def compare_outputs(ours: Path, theirs: Path) -> dict:
    from gguf import GGUFReader
    from gguf import GGMLQuantizationType as T

    a, b = ({t.name: t for t in GGUFReader(p).tensors} for p in (ours, theirs))
    result = {"tensors": len(a), "only_ours": sorted(a.keys() - b.keys()), "only_reference": sorted(b.keys() - a.keys()),
              "identical": 0, "same_values_other_type": 0, "different": []}
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


if __name__ == "__main__":
    main()
