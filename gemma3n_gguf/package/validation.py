"""Validation of a package's files against the reference: one Validator, made only if a file needs it.

With a projector, every text GGUF is validated with it on the given images and audio clips,
or on a built-in probe image (the validator's synthetic test card) when none are given, so the projector is always
compared with the reference too.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.core.stats import Estimate
from gemma3n_gguf.package.manifest import file_sha256
from gemma3n_gguf.validate.multimodal.checks import synthetic_image
from gemma3n_gguf.validate.pipeline import PhaseProgress, Validator
from gemma3n_gguf.validate.sweep.outputs import write_plot

PROBE_IMAGE = "synthetic_image(256, seed=0)"


class PackageValidator:
    def __init__(self, checkpoint: Path, options, on_progress: PhaseProgress | None):
        self.checkpoint, self.options, self.on_progress = checkpoint, options, on_progress
        self._validator: Validator | None = None
        self._probe_dir: tempfile.TemporaryDirectory | None = None

    def settings(self) -> dict:
        o = self.options
        text = file_sha256(Path(o.text)) if o.text else "built-in eval text"
        return {"text": text, "n_ctx": o.n_ctx, "chunks": o.chunks}

    def media_key(self) -> list[str]:
        if not self.options.mmproj:
            return []
        given = [file_sha256(Path(p)) for p in (*self.options.images, *self.options.audios)]
        return given or [PROBE_IMAGE]

    def validate(self, model: Path, projector: Path | None) -> dict:
        if self._validator is None:
            self._validator = Validator(self.checkpoint, text=self.options.text, n_ctx=self.options.n_ctx,
                                        chunks=self.options.chunks, cache_dir=self.options.cache_dir)
        self._validator.on_progress = _renamed(self.on_progress, f"validate {model.stem}")
        images, audios = list(self.options.images), list(self.options.audios)
        if projector is not None and not images and not audios:
            images = [self._probe_image()]
        report = self._validator.validate(model, mmproj=projector, images=images if projector else (),
                                          audios=audios if projector else ())
        return report.to_dict()

    def _probe_image(self) -> Path:
        from PIL import Image

        if self._probe_dir is None:
            self._probe_dir = tempfile.TemporaryDirectory(prefix="gemma3n-gguf-probe-")
        path = Path(self._probe_dir.name) / "probe.png"
        if not path.is_file():
            Image.fromarray(synthetic_image(256, seed=0)).save(path)
        return path


def _renamed(on_progress: PhaseProgress | None, label: str) -> PhaseProgress | None:
    if on_progress is None:
        return None
    return lambda phase, done, total: on_progress(phase if phase == "reference" else label, done, total)


@dataclass(frozen=True)
class _PlotRow:
    scheme: str
    file_bytes: int
    kld_mean: Estimate


def write_validation_outputs(out: Path, name: str, schemes: list[str], reports: dict[str, dict]) -> list[Path]:
    """validation.json (every report, by scheme) and validation.png (size against mean KLD)."""
    json_path, plot_path = out / "validation.json", out / "validation.png"
    write_text_atomically(json_path, json.dumps({s: reports[s] for s in schemes}, indent=2) + "\n")
    rows = [_PlotRow(s, reports[s]["model"]["bytes"], Estimate(**reports[s]["kld"]["kld_mean"])) for s in schemes]
    write_plot(plot_path, rows, name)
    return [json_path, plot_path]
