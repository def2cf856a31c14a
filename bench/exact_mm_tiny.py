"""An image prompt on tiny-mm through llama.cpp's mtmd against transformers, with and without
``--exact-mm-tokens``, recorded in bench/results/exact_mm_tiny.json (the README's figures for the
option).

    python bench/exact_mm_tiny.py [--repeat 1] [--preset tiny-mm] [--size-presets e2b-shape,e4b-shape]

Two measured processes: ``convert --mmproj --outtype f32`` (exact multimodal tokens, on by default
with --mmproj; the f16 projector) and ``convert --outtype f32 --no-exact-mm-tokens``. Then both
text GGUFs run the same image prompt (validate/multimodal/checks.py's synthetic image and default
prompt) with that projector, and their logits at every text position before and after the image
are compared with transformers' fp32 logits by ``image_prompt_parity``. The exact text GGUF and
the projector also run an audio prompt (a ``--audio-seconds`` clip) in the patched runtime
(``gemma3n-gguf runtime build``, ``0002-gemma3n-audio.patch``), compared with transformers by
``audio_runtime_parity``: soft tokens, their per-token cosine, and the logits after the clip. The
figures are deterministic, so ``--repeat 1`` is enough; more repeats only re-time the conversions.

What the option costs at real sizes: ``convert --outtype f16 --dry-run --json`` of each size preset
(built once in WORKDIR, as the other benches build it) with and without it, so the planned
``output.weight`` and file sizes, nothing written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from audio_encode import clip  # noqa: E402
from harness import bench_parser, ensure_checkpoint, write_results  # noqa: E402
from measure import run_measured  # noqa: E402
from report import render_results  # noqa: E402

BENCH = "exact_mm_tiny"
# role -> (label, convert options); the exact run also writes the projector both prompts use
CONVERSIONS = {
    "exact": ("gemma3n-gguf convert --mmproj --outtype f32", ["--mmproj"]),
    "plain": ("gemma3n-gguf convert --outtype f32 --no-exact-mm-tokens", ["--no-exact-mm-tokens"]),
}


def prompt_parity(checkpoint: Path, texts: dict[str, Path], projector: Path) -> dict:
    from gemma3n_gguf.validate.multimodal.checks import VisionReference, image_prompt_parity
    from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession

    reference = VisionReference(checkpoint)
    parity = {}
    for role, text in texts.items():
        with MtmdSession(text, projector) as session:
            parity[role] = image_prompt_parity(reference, session).to_dict()
    return parity


def audio_prompt_parity(checkpoint: Path, text: Path, projector: Path, seconds: float) -> dict:
    """One audio prompt in the patched runtime against transformers (the tower and the streamed text model)."""
    from gemma3n_gguf.runtime.build import build_runtime
    from gemma3n_gguf.validate.multimodal.audio_runtime import (
        AUDIO_PROMPT,
        AudioReference,
        audio_runtime_parity,
        run_in_runtime,
    )

    wave = clip(seconds)
    run = run_in_runtime(build_runtime(fetch=False), text, projector, [wave], prompt=AUDIO_PROMPT)[0]
    return {"seconds": seconds, **audio_runtime_parity(AudioReference(checkpoint), run, wave).to_dict()}


def planned_sizes(checkpoint: Path) -> dict:
    """The f16 conversion's plan with and without exact tokens: file bytes and the untied output's size."""
    plans = {}
    for role, option in (("exact", "--exact-mm-tokens"), ("plain", "--no-exact-mm-tokens")):
        done = subprocess.run([sys.executable, "-m", "gemma3n_gguf", "convert", str(checkpoint), "--outtype", "f16",
                               option, "--dry-run", "--json"], capture_output=True, text=True, check=True)
        plan = json.loads(done.stdout)
        output = [group for group in plan["groups"] if group["group"] == "output"]
        plans[role] = {"file_bytes": plan["file_bytes"], "parameters": plan["parameters"],
                       "output_parameters": output[0]["parameters"] if output else 0,
                       "output_bytes": output[0]["bytes"] if output else 0}
    return plans


def main() -> None:
    parser = bench_parser(__doc__, default_preset="tiny-mm")
    parser.add_argument("--size-presets", default="e2b-shape,e4b-shape",
                        help="presets whose f16 plan prices the option (default e2b-shape,e4b-shape)")
    parser.add_argument("--audio-seconds", type=float, default=4.0, help="the audio prompt's clip (default 4 s)")
    parser.set_defaults(repeat=1)
    args = parser.parse_args()
    work = args.workdir / f"exact-mm-{args.preset}"
    work.mkdir(parents=True, exist_ok=True)
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    runs, texts = [], {}
    for repeat in range(args.repeat):
        for role, (label, options) in CONVERSIONS.items():
            out = work / f"{args.preset}-{role}-f32.gguf"
            print(f"[{repeat + 1}/{args.repeat}] {label}", flush=True)
            measured = run_measured(label, [sys.executable, "-m", "gemma3n_gguf", "convert", str(ckpt), "-o", str(out),
                                            "--outtype", "f32", *options, "--json"], str(work / f"{role}.log"),
                                    output=out)
            runs.append(measured.record(role, repeat))
            if measured.returncode != 0:
                sys.exit(f"{label} failed (exit {measured.returncode}): see {work / f'{role}.log'}")
            texts[role] = out
    projector = next(work.glob("mmproj-*.gguf"))  # the only projector: the exact run wrote it
    checks = {"text_type": "f32", "projector": projector.name, "parity": prompt_parity(ckpt, texts, projector),
              "audio": audio_prompt_parity(ckpt, texts["exact"], projector, args.audio_seconds),
              "f16_plans": {preset: planned_sizes(ensure_checkpoint(args.workdir, preset))
                            for preset in filter(None, args.size_presets.split(","))}}
    path = write_results(BENCH, args, runs, checks)
    print(render_results(json.loads(path.read_text())), f"\nwrote {path}", sep="\n")


if __name__ == "__main__":
    main()
