"""Encode 30 s of audio with Gemma 3n's audio tower at the released sizes (USM conformer: hidden
1536, 12 layers, 8 heads; random weights, preset tiny-mm-usm), in the patched llama.cpp runtime
and in transformers, REPEAT times each, and record every run in bench/results/audio_encode.json:

1. llama.cpp: mtmd with the f16 projector (``0002-gemma3n-audio.patch``): mel features, the
   conformer and the audio embedder, one ``audio_embeddings`` call;
2. transformers: ``Gemma3nAudioFeatureExtractor``, ``Gemma3nAudioEncoder`` and ``embed_audio``
   (float32), as ``get_audio_features`` runs them.

    python bench/audio_encode.py [--repeat 3] [--preset tiny-mm-usm] [--threads 2]

Each run is a child process (load + encode), measured whole (wall time, peak RSS); the child also
reports its encode time alone. The two sides' embeddings are compared token by token.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from report import render_results  # noqa: E402

BENCH = "audio_encode"
SAMPLE_RATE = 16000
TOOLS = {"runtime": "llama.cpp mtmd (patched, f16 projector)", "transformers": "transformers (float32)"}


def clip(seconds: float) -> np.ndarray:
    """A deterministic clip: a gliding tone over noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    glide = 0.3 * np.sin(2 * np.pi * (150 * t + 20 * t**2))
    return (glide + np.random.default_rng(0).normal(0, 0.05, t.shape)).astype(np.float32)


def encode_runtime(work: Path, wave: np.ndarray, threads: int) -> tuple[np.ndarray, float]:
    from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession

    with MtmdSession(work / "text-f32.gguf", work / "mmproj-f16.gguf", n_threads=threads) as session:
        start = time.perf_counter()
        out = session.audio_embeddings(wave)
        return out, time.perf_counter() - start


def encode_transformers(checkpoint: Path, wave: np.ndarray, threads: int) -> tuple[np.ndarray, float]:
    import torch

    from gemma3n_gguf.validate.multimodal.audio_tower import audio_stack_from_checkpoint

    torch.set_num_threads(threads)
    stack = audio_stack_from_checkpoint(checkpoint)
    start = time.perf_counter()
    out = stack.embed(*stack.features(wave))
    return out, time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    """One side, in its own process: encode, save the embeddings, print the encode time."""
    wave = clip(args.seconds)
    work = args.workdir / f"audio-{args.preset}"
    if args.child == "runtime":
        out, seconds = encode_runtime(work, wave, args.threads)
    else:
        out, seconds = encode_transformers(args.workdir / args.preset, wave, args.threads)
    np.save(work / f"embeddings-{args.child}.npy", out)
    print(json.dumps({"encode_s": round(seconds, 3), "tokens": len(out)}))


def prepare(args: argparse.Namespace) -> tuple[Path, Path]:
    """The checkpoint, its f16 projector and f32 text GGUF (built once), and the patched runtime."""
    from gemma3n_gguf.convert import convert
    from gemma3n_gguf.convert.projector.convert import convert_mmproj
    from gemma3n_gguf.runtime.build import build_runtime

    checkpoint = ensure_checkpoint(args.workdir, args.preset)
    work = args.workdir / f"audio-{args.preset}"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "mmproj-f16.gguf").is_file():
        convert_mmproj(checkpoint, work / "mmproj-f16.gguf", mmproj_type="f16")
    if not (work / "text-f32.gguf").is_file():
        convert(checkpoint, work / "text-f32.gguf", outtype="f32", exact_mm_tokens=True)
    return work, build_runtime(fetch=False)


def compare(work: Path) -> dict:
    ours, ref = (np.load(work / f"embeddings-{side}.npy").astype(np.float64) for side in ("runtime", "transformers"))
    n = len(ref)
    cosine = (ours[:n] * ref).sum(1) / (np.linalg.norm(ours[:n], axis=1) * np.linalg.norm(ref, axis=1))
    return {"runtime_tokens": len(ours), "transformers_tokens": n, "min_cosine": float(cosine.min()),
            "mean_cosine": float(cosine.mean())}


def main() -> None:
    parser = bench_parser(__doc__, default_preset="tiny-mm-usm")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2, help="threads of each side (default 2)")
    parser.add_argument("--child", choices=TOOLS, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.child:
        return child(args)
    from gemma3n_gguf.runtime.build import runtime_env

    work, lib_dir = prepare(args)
    runs = []
    for repeat in range(1, args.repeat + 1):
        for side, label in TOOLS.items():
            log = work / f"{side}-{repeat}.log"
            command = [sys.executable, __file__, "--child", side, "--preset", args.preset, "--workdir",
                       str(args.workdir), "--seconds", str(args.seconds), "--threads", str(args.threads)]
            env = runtime_env(lib_dir) if side == "runtime" else None
            measured = run_measured(label, command, str(log), env=env)
            report = json.loads(log.read_text().strip().splitlines()[-1]) if measured.returncode == 0 else {}
            runs.append(measured.record(side, repeat, **report))
            print(f"repeat {repeat} {side}: {measured.seconds:.1f} s, {measured.peak_rss_gib:.2f} GiB, {report}",
                  flush=True)
    checks = {"seconds": args.seconds, "threads": args.threads, **compare(work)}
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
