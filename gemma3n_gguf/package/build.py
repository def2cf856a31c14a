"""``package``: quantized GGUFs, projector, validation, Modelfiles, model card, SHA256SUMS, manifest.

Each step is recorded in the manifest (:mod:`.manifest`) with a key over its inputs and options;
an up-to-date step is skipped, so a second run rewrites nothing and an interrupted run resumes.
Validation runs through one :class:`~gemma3n_gguf.validate.pipeline.Validator`, so the reference
pass runs at most once (and not at all when its cache holds it).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.core.errors import PackageError
from gemma3n_gguf.engine.planner import PlanOptions
from gemma3n_gguf.engine.schemes import get_scheme
from gemma3n_gguf.package.card import Card, CardRow, render_card, render_sha256sums
from gemma3n_gguf.package.manifest import Manifest, file_sha256, step_key
from gemma3n_gguf.package.modelfile import write_modelfile
from gemma3n_gguf.package.profiles import get_profile, quantize_for_target
from gemma3n_gguf.package.validation import PackageValidator, write_validation_outputs
from gemma3n_gguf.reference.identity import checkpoint_content_hash, identity_files
from gemma3n_gguf.validate.pipeline import PhaseProgress

PLE = "per_layer_token_embd.weight"
README, SUMS = "README.md", "SHA256SUMS"


@dataclass(frozen=True)
class PackageOptions:
    schemes: tuple[str, ...] = ("Q4_K_M", "Q8_0")
    mmproj: bool = False
    mmproj_type: str = "f16"
    target: str = "llama.cpp"
    publisher: str = "gemma3n-gguf"
    text: Path | None = None
    n_ctx: int = 512
    chunks: int | None = None
    cache_dir: Path | None = None
    images: tuple[Path, ...] = ()
    audios: tuple[Path, ...] = ()


@dataclass
class PackageResult:
    root: Path
    files: list[str]
    ran: list[str] = field(default_factory=list)  # steps that did work
    skipped: list[str] = field(default_factory=list)  # steps already up to date
    choices: dict[str, list[str]] = field(default_factory=dict)  # scheme -> profile choices


def build_package(checkpoint: Path, out: Path, options: PackageOptions,
                  on_progress: PhaseProgress | None = None) -> PackageResult:
    schemes = [get_scheme(s).name for s in options.schemes]  # unknown names fail before any work
    if not schemes:
        raise PackageError("no schemes to package; pass e.g. --schemes Q4_K_M,Q8_0")
    packager = _Packager(checkpoint, out, options, schemes, on_progress)
    projector = packager.projector() if options.mmproj else None
    models = {scheme: packager.quantized(scheme) for scheme in schemes}
    reports = packager.validated(models, projector)
    modelfiles = packager.modelfiles(models, projector) if packager.profile.writes_modelfiles else {}
    return packager.finish(reports, projector, modelfiles)


class _Packager:
    """One package directory: where each file goes, and the steps that make them."""

    def __init__(self, checkpoint: Path, out: Path, options: PackageOptions, schemes: list[str], on_progress):
        self.checkpoint, self.out, self.options, self.schemes = checkpoint, out, options, schemes
        self.on_progress = on_progress
        self.profile = get_profile(options.target)
        self.name = checkpoint.resolve().name
        self.files_dir = out / options.publisher / self.name if self.profile.publisher_dirs else out
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest.load(out)
        self.manifest.options = {
            "checkpoint": str(checkpoint), "schemes": schemes, "mmproj": options.mmproj,
            "mmproj_type": options.mmproj_type, "target": self.profile.name, "n_ctx": options.n_ctx,
            "chunks": options.chunks, "text": str(options.text) if options.text else None}
        self.result = PackageResult(out, [])
        self.inputs = _inputs_hash(checkpoint)
        self.run = _StepRunner(self.manifest, self.result)

    def _output(self, step: str):
        return self.manifest.steps[step].outputs[0]

    def projector(self) -> Path:
        path = self.files_dir / f"mmproj-{self.name}-{self.options.mmproj_type.upper()}.gguf"
        self.run("projector", step_key("projector", self.inputs, self.options.mmproj_type),
                 lambda: _convert_projector(self.checkpoint, path, self.options.mmproj_type, self.on_progress))
        return path

    def quantized(self, scheme: str) -> Path:
        # With a projector the text files embed the multimodal tokens as transformers does (convert --mmproj).
        path = self.files_dir / f"{self.name}-{scheme}.gguf"
        key = step_key("quantize", self.inputs, scheme, self.profile.name, self.options.mmproj)
        step = self.run(f"quantize {scheme}", key, lambda: _quantize(
            self.checkpoint, path, scheme, self.profile, self.options.mmproj, self.on_progress))
        self.result.choices[scheme] = step.result["choices"]
        return path

    def validated(self, models: dict[str, Path], projector: Path | None) -> dict[str, dict]:
        validator = PackageValidator(self.checkpoint, self.options, self.on_progress)
        projector_sha = self._output("projector").sha256 if projector else None
        reports = {}
        for scheme, model in models.items():
            key = step_key("validate", self.inputs, self._output(f"quantize {scheme}").sha256, projector_sha,
                           validator.settings(), validator.media_key())
            reports[scheme] = self.run(f"validate {scheme}", key,
                                       lambda m=model: ([], validator.validate(m, projector))).result
        key = step_key("report", [self.manifest.steps[f"validate {s}"].key for s in models])
        self.run("validation report", key,
                 lambda: (write_validation_outputs(self.out, self.name, list(models), reports), {}))
        return reports

    def modelfiles(self, models: dict[str, Path], projector: Path | None) -> dict[str, str]:
        projector_sha = self._output("projector").sha256 if projector else None
        written = {}
        for scheme, model in models.items():
            written[scheme] = f"Modelfile.{scheme}"
            key = step_key("modelfile", self.inputs, self.manifest.steps[f"quantize {scheme}"].key, projector_sha)
            self.run(f"modelfile {scheme}", key, lambda m=model, f=written[scheme]: (
                [write_modelfile(m, self.out / f, mmproj=projector, checkpoint=self.checkpoint)[0]], {}))
        return written

    def finish(self, reports: dict[str, dict], projector: Path | None, modelfiles: dict[str, str]) -> PackageResult:
        """Forget steps no longer asked for; write the card and the checksums when they changed."""
        self.manifest.retain(self.run.names)
        card = _card(self, reports, projector, modelfiles)
        _write_if_changed(self.out / README, render_card(card))
        _write_sums(self.out, self.manifest)
        self.result.files = [o.path for o in self.manifest.files()] + [README, SUMS, "manifest.json"]
        return self.result


class _StepRunner:
    """Run a step unless the manifest says it is up to date; record it when it ran."""

    def __init__(self, manifest: Manifest, result: PackageResult):
        self.manifest, self.result = manifest, result
        self.names: list[str] = []

    def __call__(self, name: str, key: str, work):
        self.names.append(name)
        step = self.manifest.current(name, key)
        if step is not None:
            self.result.skipped.append(name)
            return step
        outputs, details = work()
        self.result.ran.append(name)
        return self.manifest.record(name, key, outputs, details)


def _convert_projector(checkpoint: Path, path: Path, mmproj_type: str, on_progress):
    from gemma3n_gguf.convert.projector.convert import convert_mmproj

    written = convert_mmproj(checkpoint, path, mmproj_type=mmproj_type, on_progress=_bytes(on_progress, "projector"))
    return [written.path], {"modalities": written.modalities, "warnings": written.warnings}


def _quantize(checkpoint: Path, path: Path, scheme: str, profile, exact_mm_tokens: bool, on_progress):
    written, choices = quantize_for_target(profile, checkpoint, path, scheme=scheme, options=PlanOptions(),
                                           input_options={"exact_mm_tokens": exact_mm_tokens},
                                           on_progress=_bytes(on_progress, f"quantize {scheme}"))
    ple_bytes = next(t.nbytes for t in written.plan.tensors if t.name == PLE)
    return [written.path], {"choices": list(choices), "ple_bytes": ple_bytes}


def _bytes(on_progress: PhaseProgress | None, label: str):
    return None if on_progress is None else (lambda done, total, _what: on_progress(label, done, total))


def _inputs_hash(checkpoint: Path) -> str:
    """The checkpoint's weights and config (content hash, memoised) and every other small file in it."""
    digest = hashlib.sha256(checkpoint_content_hash(checkpoint).encode())
    weights = {p.name for p in identity_files(checkpoint)}
    for path in sorted(p for p in checkpoint.iterdir() if p.is_file() and p.name not in weights):
        digest.update(path.name.encode() + b"\0" + bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def _card(packager: _Packager, reports: dict[str, dict], projector: Path | None, modelfiles: dict[str, str]) -> Card:
    rows = []
    for scheme in packager.schemes:
        quantized, kld = packager.manifest.steps[f"quantize {scheme}"], reports[scheme]["kld"]
        output = quantized.outputs[0]
        rows.append(CardRow(scheme, output.path, output.bytes, reports[scheme]["model"]["bits_per_weight"],
                            kld["ppl_ratio"]["value"], kld["kld_mean"]["value"], kld["same_top1"]["value"],
                            quantized.result["ple_bytes"]))
    first = reports[packager.schemes[0]]
    projector_file = packager.manifest.steps["projector"].outputs[0] if projector else None
    return Card(name=packager.name, base_model=_base_model(packager.checkpoint, packager.name),
                license=_license(packager.checkpoint), target=packager.profile.name, rows=rows,
                projector=projector_file.path if projector_file else None,
                projector_bytes=projector_file.bytes if projector_file else 0, modelfiles=modelfiles,
                eval_text=first["text"]["name"], n_ctx=first["protocol"]["n_ctx"],
                scored_tokens=first["protocol"]["scored_tokens"])


def _base_model(checkpoint: Path, name: str) -> str:
    hub_id = json.loads((checkpoint / "config.json").read_text(encoding="utf-8")).get("_name_or_path") or ""
    return hub_id if re.fullmatch(r"[\w.-]+/[\w.-]+", hub_id) else name


def _license(checkpoint: Path) -> str:
    """The checkpoint README's ``license:`` front matter; Gemma 3n's own terms otherwise."""
    readme = checkpoint / "README.md"
    if readme.is_file():
        found = re.search(r"^license:\s*(\S+)\s*$", readme.read_text(encoding="utf-8"), re.MULTILINE)
        if found:
            return found.group(1)
    return "gemma"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomically(path, text)


def _write_sums(out: Path, manifest: Manifest) -> None:
    entries = [(o.path, o.sha256) for o in manifest.files()]
    entries += [(extra, file_sha256(out / extra)) for extra in (README, "manifest.json")]
    _write_if_changed(out / SUMS, render_sha256sums(sorted(entries)))

