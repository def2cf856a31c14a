"""Our `gemma3n-gguf imatrix` beside llama.cpp's `llama-imatrix` on the same checkpoint, text and
windows; their per-entry values compared, and both runs timed, in bench/results/imatrix_peer.json.

    gemma3n-gguf runtime build                  # once: builds bin/llama-imatrix with the runtime
    python bench/imatrix_peer.py [--repeat 1] [--preset tiny-text-256] [--ctx 512] [--chunks 4]

The text is the packaged evaluation text (reference/evaltext.py). llama-imatrix runs on an F32
GGUF of the checkpoint (this project's converter), with ``-c CTX -b CTX`` (one window per batch:
our windows, BOS over each window's first token) and ``--chunks``, writing its GGUF imatrix; it
runs again with its K/V cache in F32 (``-ctk f32 -ctv f32``), and on an F16 GGUF. Both files are read with the project's reader
(quantize/imatrix.py) and normalized as llama-quantize does (sum of squares / count). For each
entry: the counts must be equal, and the relative difference of the values is
``max_j |ours_j - peer_j| / max_j |peer_j|`` (relative to the entry's largest value, so columns the
activation sparsity leaves near zero do not divide by zero); ``median_rel`` is the median over
columns of ``|ours_j - peer_j| / |peer_j|``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from report import render_results  # noqa: E402

BENCH = "imatrix_peer"
OURS = "gemma3n-gguf imatrix"
PEER = "llama-imatrix"
# role -> (GGUF type llama-imatrix runs on, extra options): as a user runs it (F16 KV cache), with
# an F32 KV cache (the only fp16 step left in an F32 model), and on an F16 GGUF
PEER_RUNS = {
    "peer_imatrix": ("f32", ()),
    "peer_imatrix_f32_kv": ("f32", ("-ctk", "f32", "-ctv", "f32")),
    "peer_imatrix_f16": ("f16", ()),
}


def main() -> None:
    parser = bench_parser(__doc__, default_preset="tiny-text-256")
    parser.add_argument("--ctx", type=int, default=512, help="tokens per window (both tools)")
    parser.add_argument("--chunks", type=int, default=4, help="windows (both tools)")
    parser.add_argument("--runtime", type=Path, help="a built runtime directory (default: the cached build of "
                                                     "the current patches)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    text = write_eval_text(args.workdir)
    imatrix_tool = llama_imatrix(args.runtime)
    ggufs = {outtype: convert(ckpt, args.workdir / f"{args.preset}-{outtype}.gguf", outtype)
             for outtype, _ in PEER_RUNS.values()}
    runs, outputs = [], {}
    for repeat in range(args.repeat):
        out = args.workdir / "ours-imatrix.gguf"
        print(f"[{repeat + 1}/{args.repeat}] {OURS}", flush=True)
        ours = run_measured(OURS, [sys.executable, "-m", "gemma3n_gguf", "imatrix", str(ckpt), "--text", str(text),
                                   "-o", str(out), "--ctx", str(args.ctx), "--chunks", str(args.chunks),
                                   "--reference-mode", "memory", "--json"],
                            str(args.workdir / "ours.log"), output=out)
        runs.append(ours.record("ours", repeat))
        outputs["ours"] = out
        for role, (outtype, options) in PEER_RUNS.items():
            out = args.workdir / f"{role}.gguf"
            label = f"{PEER} {' '.join(options)} ({outtype.upper()} GGUF)".replace("  ", " ")
            print(f"[{repeat + 1}/{args.repeat}] {label}", flush=True)
            command = [*peer_command(imatrix_tool, ggufs[outtype], text, out, args.ctx, args.chunks), *options]
            peer = run_measured(label, command, str(args.workdir / f"{role}.log"), output=out)
            runs.append(peer.record(role, repeat))
            outputs[role] = out
    checks = {"ctx": args.ctx, "chunks": args.chunks, "text": "reference/evaltext.py default",
              "compared": {role: compare_imatrices(outputs["ours"], outputs[role]) for role in PEER_RUNS}}
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())), f"\nwrote {path}", sep="\n")


def write_eval_text(workdir: Path) -> Path:
    from gemma3n_gguf.reference.evaltext import default_eval_text

    path = workdir / "eval-text.txt"
    path.write_text(default_eval_text().text, encoding="utf-8")
    return path


def llama_imatrix(runtime: Path | None) -> Path:
    """``bin/llama-imatrix`` of the built runtime (never built here)."""
    from gemma3n_gguf.runtime.build import build_runtime, tool_path

    return tool_path(runtime or build_runtime(fetch=False), "llama-imatrix")


def convert(checkpoint: Path, out: Path, outtype: str) -> Path:
    if not out.is_file():
        from gemma3n_gguf.convert import convert as convert_text

        convert_text(checkpoint, out, outtype=outtype)
    return out


def peer_command(tool: Path, gguf: Path, text: Path, out: Path, ctx: int, chunks: int, threads: int = 2) -> list[str]:
    """llama-imatrix on our windows: ``-b`` = ``-c`` keeps one window per batch (its default
    batch of 2048 would put four 512-token windows side by side in one KV cache)."""
    return [str(tool), "-m", str(gguf), "-f", str(text), "-o", str(out), "-c", str(ctx), "-b", str(ctx),
            "--chunks", str(chunks), "-t", str(threads), "--no-ppl", "--output-format", "gguf"]


def compare_imatrices(ours_path: Path, peer_path: Path) -> dict:
    """Per entry: counts equal, and the relative difference of the normalized values."""
    from gemma3n_gguf.quantize.imatrix import normalize, read_imatrix

    ours, peer = read_imatrix(ours_path), read_imatrix(peer_path)
    ours_values, peer_values = normalize(ours), normalize(peer)
    shared = sorted(ours.entries.keys() & peer.entries.keys())
    entries = {name: {"counts_equal": bool(np.array_equal(ours.entries[name].counts, peer.entries[name].counts)),
                      **relative_difference(ours_values[name], peer_values[name])} for name in shared}
    worst = max(entries, key=lambda name: entries[name]["max_rel"], default=None)
    by_kind: dict[str, float] = {}
    for name, entry in entries.items():
        by_kind[kind_of(name)] = max(by_kind.get(kind_of(name), 0.0), entry["max_rel"])
    return {"entries": entries, "only_ours": sorted(ours.entries.keys() - peer.entries.keys()),
            "only_peer": sorted(peer.entries.keys() - ours.entries.keys()),
            "counts_equal": all(entry["counts_equal"] for entry in entries.values()),
            "max_rel": entries[worst]["max_rel"] if worst else None, "worst": worst,
            "median_rel": statistics.median(entry["median_rel"] for entry in entries.values()) if entries else None,
            "by_kind": by_kind, "chunk_count": {"ours": ours.chunk_count, "peer": peer.chunk_count}}


def relative_difference(ours: np.ndarray, peer: np.ndarray) -> dict:
    ours, peer = ours.astype(np.float64), peer.astype(np.float64)
    scale = float(np.abs(peer).max()) or 1.0
    diff = np.abs(ours - peer)
    nonzero = np.abs(peer) > 0
    per_column = diff[nonzero] / np.abs(peer[nonzero])
    return {"max_rel": float(diff.max() / scale), "median_rel": float(np.median(per_column)) if per_column.size else 0.0}


def kind_of(name: str) -> str:
    """``blk.7.attn_q.weight`` -> ``attn_q``: entries grouped across layers."""
    parts = name.split(".")
    return parts[2] if len(parts) > 3 and parts[0] == "blk" else name


if __name__ == "__main__":
    main()
