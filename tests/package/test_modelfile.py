"""`gemma3n-gguf modelfile`: files Ollama's parser accepts and reads back unchanged; bad --param refused."""

from __future__ import annotations

import json
import shutil

import pytest

from cli_helpers import run_cli
from package.ollama_modelfile import ModelfileSyntaxError, parse

from gemma3n_gguf.core.errors import PackageError
from gemma3n_gguf.package.modelfile import quote

SYSTEM = 'You are a careful assistant.\nAnswer in "plain" words.'
LICENSE = "Gemma Terms of Use\n\nSection 1: ...\n  indented line\n"


@pytest.fixture(scope="module")
def licensed_checkpoint(tiny_mm_checkpoint, tmp_path_factory):
    """tiny-mm with a LICENSE file, linked file by file (the weights are not copied)."""
    copy = tmp_path_factory.mktemp("licensed") / "tiny-mm"
    copy.mkdir()
    for item in tiny_mm_checkpoint.iterdir():
        (copy / item.name).symlink_to(item)
    (copy / "LICENSE").write_text(LICENSE)
    return copy


def commands(path):
    return [(c.name, c.args) for c in parse(path.read_text())]


def test_full_modelfile_parses_and_reads_back(capsys, tmp_path, tiny_mm_text_gguf, tiny_mm_mmproj, licensed_checkpoint):
    model = shutil.copy(tiny_mm_text_gguf(True), tmp_path / "model.gguf")
    projector = shutil.copy(tiny_mm_mmproj("f16").path, tmp_path / "mmproj-model-F16.gguf")
    out = tmp_path / "ollama" / "Modelfile"
    out.parent.mkdir()
    run = run_cli(capsys, "modelfile", model, "--mmproj", projector, "--system", SYSTEM, "--checkpoint",
                  licensed_checkpoint, "--param", "num_ctx=8192", "--param", "top_k=40", "-o", out)
    assert run.code == 0, run.err
    got = commands(out)
    assert [args for name, args in got if name == "model"] == ["../model.gguf", "../mmproj-model-F16.gguf"]
    assert (out.parent / "../model.gguf").resolve() == model.resolve()
    assert dict(got)["system"] == SYSTEM
    assert dict(got)["license"] == LICENSE.strip()
    params = [(n, a) for n, a in got if n not in {"model", "system", "license", "template"}]
    # Gemma's generation_config.json (top_k 64, top_p 0.95, sampling on) with transformers' defaults; --param wins.
    assert params == [("stop", "<end_of_turn>"), ("temperature", "1"), ("top_p", "0.95"), ("min_p", "0"),
                      ("repeat_penalty", "1"), ("num_ctx", "8192"), ("top_k", "40")]
    assert not any(name in {"renderer", "parser"} for name, _ in got)


def test_without_checkpoint_no_sampling_is_invented(capsys, tmp_path, tiny_text_gguf_factory):
    model = shutil.copy(tiny_text_gguf_factory("f16"), tmp_path / "m.gguf")
    run = run_cli(capsys, "modelfile", model, "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["parameters"] == [["stop", "<end_of_turn>"]]
    assert "no general.sampling" in report["chosen"]["sampling"]
    assert [n for n, _ in commands(tmp_path / "Modelfile")] == ["model", "template", "stop"]


@pytest.mark.parametrize("param, message", [
    ("top_q=0.5", "unknown PARAMETER 'top_q'"),
    ("top_k=0.5", "top_k needs a int value"),
    ("temperature=warm", "temperature needs a float value"),
    ("use_mmap=yes", "use_mmap needs a bool value"),
    ("mirostat=1", "deprecated"),
    ("draft_num_predict=4", "not accepted by Ollama 0.9.3"),
    ("num_ctx", "not NAME=VALUE"),
])
def test_bad_param_is_refused_before_writing(capsys, tmp_path, tiny_text_gguf_factory, param, message):
    out = tmp_path / "Modelfile"
    run = run_cli(capsys, "modelfile", tiny_text_gguf_factory("f16"), "--param", param, "-o", out)
    assert run.code == 1
    assert message in run.err and len(run.err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_projector_in_the_model_slot_is_refused(capsys, tmp_path, tiny_mm_mmproj):
    run = run_cli(capsys, "modelfile", tiny_mm_mmproj("f16").path, "-o", tmp_path / "Modelfile")
    assert run.code == 1 and "not a Gemma 3n text GGUF" in run.err


@pytest.mark.parametrize("value", ["plain", " leading space", "trailing ", '"starts quoted"', "two\nlines",
                                   'ends with a quote"', "", "tab\tinside"])
def test_quote_round_trips_through_ollamas_parser(value):
    (command,) = [c for c in parse(f"FROM ./m.gguf\nSYSTEM {quote(value)}\n") if c.name == "system"]
    assert command.args == value


def test_unrepresentable_values_are_refused():
    for value in ['has """ inside', "bell\x07"]:
        with pytest.raises(PackageError):
            quote(value)


@pytest.mark.parametrize("text, problem", [
    ("TEMPLATE x\n", "no FROM line"),
    ("FROM ./m.gguf\nFORM ./n.gguf\n", "invalid command"),
    ("FROM ./m.gguf\nSYSTEM \"\"\"unterminated\n", "unexpected end of file"),
    ("FROM ./m.gguf\nSYSTEM \"half quoted\n", "unexpected end of file"),
    ("FROM ./m.gguf\nPARAMETER top_q 1\n", "unknown parameter"),
    ("FROM ./m.gguf\nPARAMETER num_ctx 4k\n", "invalid int"),
    ("FROM ./m.gguf\nPARAMETER temperature hot\n", "invalid float"),
    ("FROM ./m.gguf\nPARAMETER use_mmap yes\n", "invalid bool"),
    ("FROM ./m.gguf\nMESSAGE robot hi\n", "message role"),
    ("FROM\n", "invalid command"),
])
def test_validator_rejects_broken_modelfiles(text, problem):
    with pytest.raises(ModelfileSyntaxError, match=problem):
        parse(text)
