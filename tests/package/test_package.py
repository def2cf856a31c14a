"""`gemma3n-gguf package` on tiny-mm: checksums, loadable files, card = validation.json, idempotent re-runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys

import pytest

from cli_helpers import run_cli
from package.ollama_modelfile import parse

from gemma3n_gguf.cli import main
from gemma3n_gguf.validate.multimodal.mtmd import MtmdSession

pytestmark = pytest.mark.slow
SCHEMES = ("Q4_K_M", "Q8_0")


def package_args(checkpoint, out, cache, *extra):
    return ("package", checkpoint, "--schemes", ",".join(SCHEMES), "--mmproj", "--chunks", "1",
            "--cache-dir", cache, "-o", out, "--json", *extra)


@pytest.fixture(scope="module")
def dist(tiny_mm_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    out, cache = root / "dist", root / "cache"
    first = _run(tiny_mm_checkpoint, out, cache)
    assert first["ran"] and not first["skipped"]
    return out, cache


def _run(checkpoint, out, cache, *extra) -> dict:
    """The console entry point, in process (a module fixture cannot use capsys): its --json report."""
    stdout, argv = io.StringIO(), sys.argv
    sys.argv = ["gemma3n-gguf", *map(str, package_args(checkpoint, out, cache, *extra))]
    try:
        with contextlib.redirect_stdout(stdout):
            main()
    except SystemExit as exc:
        assert exc.code in (0, None), f"package exited {exc.code}"
    finally:
        sys.argv = argv
    return json.loads(stdout.getvalue())


def test_sha256sums_verify(dist):
    out, _ = dist
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = {line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()}
    assert {"README.md", "manifest.json", "validation.json", "mmproj-tiny-mm-F16.gguf"} <= listed
    assert {f"tiny-mm-{s}.gguf" for s in SCHEMES} | {f"Modelfile.{s}" for s in SCHEMES} <= listed


def test_every_gguf_loads_in_llama_cpp_and_the_projector_in_mtmd(dist):
    out, _ = dist
    for scheme in SCHEMES:
        with MtmdSession(out / f"tiny-mm-{scheme}.gguf", out / "mmproj-tiny-mm-F16.gguf", n_ctx=256) as session:
            assert session.supports_vision and session.n_vocab > 0


def test_card_numbers_are_the_validation_json(dist):
    out, _ = dist
    validation = json.loads((out / "validation.json").read_text())
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: gemma\nbase_model: tiny-mm\ntags:\n")
    for scheme in SCHEMES:
        (row,) = [line for line in card.splitlines() if line.startswith(f"| `tiny-mm-{scheme}.gguf`")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        report = validation[scheme]
        expected = [report["model"]["bits_per_weight"], report["kld"]["ppl_ratio"]["value"],
                    report["kld"]["kld_mean"]["value"], report["kld"]["same_top1"]["value"]]
        assert [float(c) for c in cells[2:6]] == [float(f"{v:.6g}") for v in expected]
        assert report["model"]["bytes"] == (out / f"tiny-mm-{scheme}.gguf").stat().st_size
        assert any(m["kind"] == "image" for m in report["media"])  # the projector was validated too
    assert "-ot 'per_layer_token_embd\\.weight=CPU'" in card
    for runtime in ("llama-cli", "llama-mtmd-cli", "ollama create", "LM Studio"):
        assert runtime in card


def test_modelfiles_point_at_the_package_files(dist):
    out, _ = dist
    for scheme in SCHEMES:
        commands = parse((out / f"Modelfile.{scheme}").read_text())
        froms = [c.args for c in commands if c.name == "model"]
        assert froms == [f"./tiny-mm-{scheme}.gguf", "./mmproj-tiny-mm-F16.gguf"]


def test_second_run_rewrites_nothing_and_an_interrupted_run_resumes(dist, tiny_mm_checkpoint):
    out, cache = dist
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _run(tiny_mm_checkpoint, out, cache)
    assert again["ran"] == [] and len(again["skipped"]) == 8
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # As if the run had stopped before Q8_0 was written: its file and manifest entry gone.
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["steps"]["quantize Q8_0"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "tiny-mm-Q8_0.gguf").unlink()
    resumed = _run(tiny_mm_checkpoint, out, cache)
    # The same bytes come back, so their validation and Modelfile are still up to date.
    assert resumed["ran"] == ["quantize Q8_0"]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0


def test_lmstudio_layout_puts_the_projector_beside_the_model(tiny_mm_checkpoint, dist, tmp_path, capsys):
    _, cache = dist
    run = run_cli(capsys, "package", tiny_mm_checkpoint, "--schemes", "Q8_0", "--mmproj", "--chunks", "1",
                  "--cache-dir", cache, "--target", "lmstudio", "--publisher", "acme", "-o", tmp_path / "lms")
    assert run.code == 0, run.err
    model_dir = tmp_path / "lms" / "acme" / "tiny-mm"
    assert sorted(p.name for p in model_dir.iterdir()) == ["mmproj-tiny-mm-F16.gguf", "tiny-mm-Q8_0.gguf"]
    assert not list((tmp_path / "lms").glob("Modelfile*"))
    assert "acme/tiny-mm/tiny-mm-Q8_0.gguf" in (tmp_path / "lms" / "SHA256SUMS").read_text()
    assert re.search(r"lmstudio", (tmp_path / "lms" / "README.md").read_text())
