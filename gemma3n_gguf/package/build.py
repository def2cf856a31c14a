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
    profile = get_profile(options.target)
    out.mkdir(parents=True, exist_ok=True)
    name = checkpoint.resolve().name
    files_dir = out / options.publisher / name if profile.publisher_dirs else out
    files_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(out)
    manifest.options = {"checkpoint": str(checkpoint), "schemes": schemes, "mmproj": options.mmproj,
                        "mmproj_type": options.mmproj_type, "target": profile.name, "n_ctx": options.n_ctx,
                        "chunks": options.chunks, "text": str(options.text) if options.text else None}
    result = PackageResult(out, [])
    inputs = _inputs_hash(checkpoint)
    run = _StepRunner(manifest, result)

    projector = None
    if options.mmproj:
        projector = files_dir / f"mmproj-{name}-{options.mmproj_type.upper()}.gguf"
        run("projector", step_key("projector", inputs, options.mmproj_type),
            lambda: _convert_projector(checkpoint, projector, options.mmproj_type, on_progress))
    models = {}
    for scheme in schemes:
        models[scheme] = files_dir / f"{name}-{scheme}.gguf"
        step = run(f"quantize {scheme}", step_key("quantize", inputs, scheme, profile.name, options.mmproj),
                   lambda s=scheme: _quantize(checkpoint, models[s], s, profile, options.mmproj, on_progress))
        result.choices[scheme] = step.result["choices"]

    validator = PackageValidator(checkpoint, options, on_progress)
    media_key = validator.media_key()
    projector_sha = manifest.steps["projector"].outputs[0].sha256 if projector else None
    reports = {}
    for scheme in schemes:
        model_sha = manifest.steps[f"quantize {scheme}"].outputs[0].sha256
        key = step_key("validate", inputs, model_sha, projector_sha, validator.settings(), media_key)
        reports[scheme] = run(f"validate {scheme}", key,
                              lambda s=scheme: ([], validator.validate(models[s], projector))).result
    run("validation report", step_key("report", [manifest.steps[f"validate {s}"].key for s in schemes]),
        lambda: (write_validation_outputs(out, name, schemes, reports), {}))

    modelfiles = {}
    if profile.name != "lmstudio":
        for scheme in schemes:
            modelfiles[scheme] = f"Modelfile.{scheme}"
            key = step_key("modelfile", inputs, manifest.steps[f"quantize {scheme}"].key, projector_sha)
            run(f"modelfile {scheme}", key,
                lambda s=scheme: ([write_modelfile(models[s], out / f"Modelfile.{s}", mmproj=projector,
                                                   checkpoint=checkpoint)[0]], {}))
    manifest.retain(run.names)
    card = _card(checkpoint, name, out, profile.name, manifest, schemes, reports, projector, modelfiles)
    _write_if_changed(out / README, render_card(card))
    _write_sums(out, manifest)
    result.files = [o.path for o in manifest.files()] + [README, SUMS, "manifest.json"]
    return result


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


def _card(checkpoint, name, out, target, manifest, schemes, reports, projector, modelfiles) -> Card:
    rows = []
    for scheme in schemes:
        quantized, kld = manifest.steps[f"quantize {scheme}"], reports[scheme]["kld"]
        output = quantized.outputs[0]
        rows.append(CardRow(scheme, output.path, output.bytes, reports[scheme]["model"]["bits_per_weight"],
                            kld["ppl_ratio"]["value"], kld["kld_mean"]["value"], kld["same_top1"]["value"],
                            quantized.result["ple_bytes"]))
    first = reports[schemes[0]]
    return Card(name=name, base_model=_base_model(checkpoint, name), license=_license(checkpoint), target=target,
                rows=rows, projector=manifest.steps["projector"].outputs[0].path if projector else None,
                projector_bytes=manifest.steps["projector"].outputs[0].bytes if projector else 0,
                modelfiles=modelfiles, eval_text=first["text"]["name"], n_ctx=first["protocol"]["n_ctx"],
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

