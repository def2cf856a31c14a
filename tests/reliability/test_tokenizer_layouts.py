"""Both tokenizer layouts transformers writes convert to the same vocabulary, token for token.

transformers 4.x keeps added tokens in tokenizer_config.json's ``added_tokens_decoder``; 5.x
keeps them only in tokenizer.json. The 5.x layout here is written by transformers itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gguf import GGUFReader

from gemma3n_gguf.convert import convert
from gemma3n_gguf.model.vocab import MULTIMODAL_TOKENS, tokenization_corpus
from gemma3n_gguf.reference.llama_runner import tokenize_with_llama
from cli_helpers import run_cli

LAYOUTS = ["transformers4", "transformers5"]


@pytest.fixture(scope="module")
def layouts(tiny_text_checkpoint, tmp_path_factory) -> dict[str, Path]:
    from transformers import AutoTokenizer

    saved = tmp_path_factory.mktemp("t5") / "tiny-text"
    saved.mkdir()
    for path in tiny_text_checkpoint.iterdir():  # weights and tokenizer.model as they are
        if path.name not in ("tokenizer_config.json", "special_tokens_map.json"):
            (saved / path.name).symlink_to(path)
    AutoTokenizer.from_pretrained(tiny_text_checkpoint).save_pretrained(saved)
    return {"transformers4": tiny_text_checkpoint, "transformers5": saved}


@pytest.fixture(scope="module")
def ggufs(layouts, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("layouts")
    return {name: convert(path, out / f"{name}.gguf", outtype="f32").path for name, path in layouts.items()}


def gguf_tokens(path: Path) -> list[str]:
    field = GGUFReader(path).fields["tokenizer.ggml.tokens"]
    return [bytes(field.parts[i]).decode() for i in field.data]


def test_the_transformers5_layout_keeps_added_tokens_only_in_tokenizer_json(layouts):
    saved = layouts["transformers5"]
    assert "added_tokens_decoder" not in json.loads((saved / "tokenizer_config.json").read_text())
    added = {e["id"]: e["content"] for e in json.loads((saved / "tokenizer.json").read_text())["added_tokens"]}
    assert added[1024] == "<end_of_image>" and added[1153] == "<audio_soft_token>"


def test_both_layouts_give_the_same_vocabulary(ggufs, layouts):
    tokens = {name: gguf_tokens(path) for name, path in ggufs.items()}
    assert tokens["transformers5"] == tokens["transformers4"]
    config = json.loads((layouts["transformers5"] / "config.json").read_text())
    for id_key, (_, token) in MULTIMODAL_TOKENS.items():
        assert tokens["transformers5"][config[id_key]] == token
    assert not any(t.startswith("[PAD") for t in tokens["transformers5"][1024:1280])


@pytest.mark.parametrize("text", tokenization_corpus())
@pytest.mark.parametrize("layout", LAYOUTS)
def test_llama_cpp_tokenizes_like_transformers_in_both_layouts(layout, text, layouts, ggufs):
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(layouts[layout])(text, add_special_tokens=False)["input_ids"]
    assert tokenize_with_llama(ggufs[layout], text, add_bos=False, special=True) == expected


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_a_tokenizer_without_the_multimodal_tokens_is_refused(layouts, tmp_path, capsys):
    ckpt = _copy(layouts["transformers5"], tmp_path / "ckpt")
    (ckpt / "tokenizer.json").unlink()
    result = run_cli(capsys, "convert", ckpt, "-o", tmp_path / "out.gguf")
    assert result.code == 1
    assert result.err.strip() == (
        "error: the tokenizer disagrees with config.json on multimodal tokens (eoi_token_id 1024 is "
        "'[PAD1024]', not '<end_of_image>'; image_token_id 1025 is '[PAD1025]', not '<image_soft_token>'; "
        "eoa_token_id 1152 is '[PAD1152]', not '<end_of_audio>'; audio_token_id 1153 is '[PAD1153]', "
        "not '<audio_soft_token>'): its added tokens are missing from tokenizer_config.json and "
        "tokenizer.json, or it belongs to another model; copy the tokenizer files of the original release")
    assert not (tmp_path / "out.gguf").exists()


def test_a_config_whose_multimodal_ids_moved_is_refused(layouts, tmp_path, capsys):
    ckpt = _copy(layouts["transformers4"], tmp_path / "ckpt")
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").unlink()
    (ckpt / "config.json").write_text(json.dumps({**config, "image_token_id": 1030}))
    result = run_cli(capsys, "convert", ckpt, "-o", tmp_path / "out.gguf")
    assert result.code == 1
    assert "(image_token_id 1030 is '<unused_vision_6>', not '<image_soft_token>')" in result.err
    assert not (tmp_path / "out.gguf").exists()


def test_tokenizer_files_that_disagree_are_refused(layouts, tmp_path, capsys):
    ckpt = _copy(layouts["transformers4"], tmp_path / "ckpt")
    saved = json.loads((layouts["transformers5"] / "tokenizer.json").read_text())
    for entry in saved["added_tokens"]:
        if entry["id"] == 1024:
            entry["content"] = "<end_of_picture>"
    (ckpt / "tokenizer.json").write_text(json.dumps(saved))
    result = run_cli(capsys, "convert", ckpt, "-o", tmp_path / "out.gguf")
    assert result.code == 1
    assert result.err.strip() == (
        "error: tokenizer.json and tokenizer_config.json disagree on added token 1024 ('<end_of_picture>' vs "
        "'<end_of_image>'): the tokenizer files come from different models")
