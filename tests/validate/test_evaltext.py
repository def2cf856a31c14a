"""The evaluation text: the packaged multilingual default and user files."""

from __future__ import annotations

import unicodedata

import pytest

from gemma3n_gguf.core.errors import ValidationError
from gemma3n_gguf.reference.evaltext import EvalText, default_eval_text, load_eval_text

SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "DEVANAGARI", "HIRAGANA", "CJK", "HANGUL")


def test_default_text_is_shipped_and_multilingual():
    text = default_eval_text()
    assert load_eval_text(None) == text and text.is_default
    assert len(text.text) > 10_000
    names = {unicodedata.name(ch, "").split(" ")[0] for ch in set(text.text) if ch.isalpha()}
    missing = [script for script in SCRIPTS if script not in names]
    assert not missing, f"scripts missing from the default text: {missing}"


def test_user_file_is_read_as_utf8(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Grüße, 世界", encoding="utf-8")
    loaded = load_eval_text(path)
    assert loaded.text == "Grüße, 世界" and loaded.name == str(path) and not loaded.is_default
    assert loaded.sha256 != default_eval_text().sha256
    assert load_eval_text(loaded) is loaded


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"\xff\xfe caf\xe9", "is not UTF-8"),
    (b"  \n ", "is empty"),
])
def test_unusable_text_files_are_refused(tmp_path, content, message):
    path = tmp_path / "t.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValidationError, match=message):
        load_eval_text(path)


@pytest.mark.slow
def test_default_text_fills_several_windows_with_the_tiny_tokenizer(tiny_text_checkpoint):
    from gemma3n_gguf.validate.tokens import reference_token_ids

    assert len(reference_token_ids(tiny_text_checkpoint, default_eval_text().text)) >= 8 * 512


def test_eval_text_digest_depends_on_content():
    assert EvalText("a", "x").sha256 != EvalText("a", "y").sha256
    assert EvalText("a", "x").sha256 == EvalText("b", "x").sha256
