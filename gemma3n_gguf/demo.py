"""The demo: the whole toolkit on a tiny multimodal Gemma 3n built on the spot (random weights, Google's layout).

Convert (text + projector), quantize in one pass, validate text (KLD against transformers) and
image and audio embeddings, record a CI baseline and gate a rebuilt file against it, write an
Ollama Modelfile, and package everything. Every row has a bound; any row out of bounds (or any
step that fails) makes ``gemma3n-gguf demo`` exit 1. A validated file out of bounds stops the
demo after that file's rows: the later steps would build on a file already known to be off.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Column, Table

from gemma3n_gguf.convert.projector.convert import convert_text_and_mmproj
from gemma3n_gguf.core.errors import Gemma3nGGUFError
from gemma3n_gguf.core.units import human_bytes
from gemma3n_gguf.fixtures import make_checkpoint
from gemma3n_gguf.package.build import PackageOptions, build_package
from gemma3n_gguf.package.manifest import file_sha256
from gemma3n_gguf.package.modelfile import write_modelfile
from gemma3n_gguf.quantize import quantize
from gemma3n_gguf.validate.gate import ci
from gemma3n_gguf.validate.multimodal.checks import synthetic_image
from gemma3n_gguf.validate.pipeline import Validator

PRESET = "tiny-mm"
CHUNKS = 1  # one 512-token window: the demo is about the workflow, sweep/validate measure more

# Text bounds: (max mean KLD, min same-top-1). Measured on tiny-mm, one window (mean KLD, top-1):
# F16 3e-6 1.0 | Q8_0 4e-4 1.0 | Q4_K_M 2.3e-2 1.0; bounds are ~3-5x the KLD.
TEXT_BOUNDS = {"F16": (1e-4, 0.99), "Q8_0": (2e-3, 0.98), "Q4_K_M": (0.1, 0.9)}
# Embedding cosine against transformers, per type of the text file the projector is run with.
MIN_IMAGE_COSINE = 0.999
MIN_AUDIO_COSINE = 0.999


@dataclass
class DemoRow:
    step: str
    measured: str
    bound: str
    failure: str | None  # None: within its bound


def run_demo(out: Path, console: Console) -> list[DemoRow]:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: list[DemoRow] = []
    checkpoint = out / PRESET
    with console.status(f"building the {PRESET} checkpoint (random weights, Google's layout)"):
        if not (checkpoint / "config.json").is_file():
            make_checkpoint(checkpoint, PRESET, seed=0, overwrite=True)
    image, audio = _media(out)
    files = _build_files(checkpoint, out, console, rows)
    validated = files is not None and _validate(checkpoint, out, *files, image, audio, console, rows)
    if validated:
        text_models, projector = files
        _modelfile(checkpoint, out, text_models["Q4_K_M"], projector, rows)
        packaged = _package(checkpoint, out, image, console, rows)
        _gate(checkpoint, out, text_models["Q4_K_M"], packaged, console, rows)
    console.print(_table(rows))
    failed = [r for r in rows if r.failure]
    stopped = "" if validated else ", the later steps not run"
    verdict = ("[bold green]all within bounds[/bold green]" if not failed
               else f"[bold red]{len(failed)} out of bounds{stopped}[/bold red]")
    console.print(f"{verdict} ({time.perf_counter() - started:.0f} s). Next: gemma3n-gguf package "
                  f"{checkpoint} --mmproj -o dist", highlight=False)
    return rows


def _media(out: Path) -> tuple[Path, Path]:
    from PIL import Image

    image, audio = out / "scene.png", out / "tone.wav"
    Image.fromarray(synthetic_image(256, seed=3)).save(image)
    samples = (0.4 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 32767).astype("<i2")
    with wave.open(str(audio), "wb") as stream:
        stream.setnchannels(1), stream.setsampwidth(2), stream.setframerate(16000)
        stream.writeframes(samples.tobytes())
    return image, audio


def _step(rows: list[DemoRow], name: str, bound: str, work: Callable[[], tuple[str, str | None]]) -> bool:
    """Run ``work`` -> (measured, failure); a library error is this row's failure, not a crash."""
    try:
        measured, failure = work()
    except Gemma3nGGUFError as exc:
        measured, failure = "error", str(exc)
    rows.append(DemoRow(name, measured, bound, failure))
    return failure is None


def _build_files(checkpoint: Path, out: Path, console: Console, rows) -> tuple[dict[str, Path], Path] | None:
    built: dict[str, Path] = {}

    def convert():
        with console.status("converting to F16 with the projector (vision + audio)"):
            text, projector = convert_text_and_mmproj(checkpoint, out / f"{PRESET}-F16.gguf", outtype="f16")
        built["F16"], built["projector"] = text.path, projector.path
        return f"{human_bytes(text.path.stat().st_size)} + {human_bytes(projector.path.stat().st_size)}", None

    def quantize_all():
        for scheme in ("Q8_0", "Q4_K_M"):
            with console.status(f"quantizing to {scheme} in one pass from the safetensors"):
                built[scheme] = quantize(checkpoint, out / f"{PRESET}-{scheme}.gguf", scheme=scheme,
                                         exact_mm_tokens=True).path
        return ", ".join(f"{s} {human_bytes(built[s].stat().st_size)}" for s in ("Q8_0", "Q4_K_M")), None

    if not (_step(rows, "convert text + projector", "both files written", convert)
            and _step(rows, "quantize (one pass)", "both files written", quantize_all)):
        return None
    projector = built.pop("projector")
    return built, projector


def _validate(checkpoint, out, models, projector, image, audio, console, rows) -> bool:
    """Validate each text model with the projector, in order; False after the first model out of bounds."""
    validator = Validator(checkpoint, chunks=CHUNKS, cache_dir=out / "reference-cache")
    for kind, path in models.items():
        # Audio runs on the reference path (llama.cpp has no Gemma 3n audio graph): once is enough.
        audios = [audio] if kind == "F16" else []
        with console.status(f"validating {kind}: transformers against llama.cpp (text, image{', audio' * bool(audios)})"):
            try:
                report = validator.validate(path, mmproj=projector, images=[image], audios=audios)
            except Gemma3nGGUFError as exc:
                rows.append(DemoRow(f"validate {kind}", "error", "runs", str(exc)))
                return False
        max_kld, min_top1 = TEXT_BOUNDS[kind]
        kld, top1 = report.kld.kld_mean.value, report.kld.same_top1.value
        failure = None if kld <= max_kld and top1 >= min_top1 else "out of bounds"
        rows.append(DemoRow(f"text {kind}", f"mean KLD {kld:.2e}, same top-1 {top1:.3f}",
                            f"KLD <= {max_kld:.0e}, top-1 >= {min_top1}", failure))
        for medium, bound in (("image", MIN_IMAGE_COSINE), ("audio", MIN_AUDIO_COSINE))[:1 + bool(audios)]:
            cosine = report.embedding_cosine(medium)
            ok = cosine is not None and cosine >= bound
            rows.append(DemoRow(f"{medium} embeddings ({kind})", f"cosine {cosine:.6f}" if cosine is not None else "none",
                                f">= {bound}", None if ok else "out of bounds"))
        if any(row.failure for row in rows):
            return False
    return True


def _gate(checkpoint, out, model, packaged: Path | None, console, rows) -> None:
    """Record a baseline from the Q4_K_M built above, then gate the package's rebuilt Q4_K_M on it."""

    def gate():
        if packaged is None:
            return "no packaged file", "the package step failed"
        with console.status("CI gate: recording a baseline, then checking the packaged Q4_K_M against it"):
            baseline = out / "baseline-Q4_K_M.json"
            ci.record_baseline(model, checkpoint, baseline, chunks=CHUNKS, cache_dir=out / "reference-cache")
            result = ci.check(packaged, checkpoint, baseline, cache_dir=out / "reference-cache")
        return f"{len(result.outcomes)} checks", None if result.passed else "regression"

    _step(rows, "CI gate vs baseline", "every check within its limit", gate)


def _modelfile(checkpoint, out, model, projector, rows) -> None:
    def write():
        path, modelfile = write_modelfile(model, out / "Modelfile", mmproj=projector, checkpoint=checkpoint)
        return f"{path.name}: {len(modelfile.froms)} FROM, {len(modelfile.parameters)} PARAMETER", None

    _step(rows, "Ollama Modelfile", "TEMPLATE renders the GGUF's chat template", write)


def _package(checkpoint, out, image, console, rows) -> Path | None:
    def package():
        dist = out / "dist"
        with console.status("packaging Q4_K_M + projector (validation, card, Modelfile, checksums)"):
            build_package(checkpoint, dist, PackageOptions(schemes=("Q4_K_M",), mmproj=True, chunks=CHUNKS,
                                                           cache_dir=out / "reference-cache", images=(image,)))
        sums = [line.split("  ", 1) for line in (dist / "SHA256SUMS").read_text().splitlines()]
        bad = [name for digest, name in sums if file_sha256(dist / name) != digest]
        return f"{len(sums)} files checksummed", (f"checksum mismatch: {', '.join(bad)}" if bad else None)

    ok = _step(rows, "package", "SHA256SUMS verifies", package)
    return out / "dist" / f"{PRESET}-Q4_K_M.gguf" if ok else None


def _table(rows: list[DemoRow]) -> Table:
    table = Table(Column("step", no_wrap=True), "measured", "bound", Column("verdict", no_wrap=True),
                  title=f"gemma3n-gguf on {PRESET}", title_justify="left")
    for r in rows:
        verdict = "[green]pass[/green]" if r.failure is None else f"[red]{r.failure}[/red]"
        table.add_row(r.step, r.measured, r.bound, verdict)
    return table
