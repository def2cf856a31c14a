"""The Modelfile's TEMPLATE, run by Go's text/template as Ollama runs it, equals transformers' prompt."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from package.ollama_modelfile import parse

from gemma3n_gguf.core.errors import PackageError
from gemma3n_gguf.package.chat_template import PROBES, check_gemma_format
from gemma3n_gguf.package.modelfile import write_modelfile

CONVERSATIONS = {
    "single turn": [("user", "Hi!")],
    "system + user": [("system", "Answer briefly."), ("user", "What is 2+2?")],
    "multi-turn, no system": [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")],
    "multi-turn with system": [("system", "You are terse."), ("user", "Name a colour."), ("assistant", "Red."),
                               ("user", "Another?"), ("assistant", "Blue."), ("user", "One more.")],
    "assistant last": [("user", "Write a haiku."), ("assistant", "Autumn moonlight")],
    "system, assistant last": [("system", "Be poetic."), ("user", "A haiku?"), ("assistant", "Old pond")],
    "empty system": [("system", ""), ("user", "Hi!")],
    "multi-line, quotes, braces, unicode": [("user", 'Line one.\nLine "two" {{ .Prompt }} \u00e9\u4e2d')],
}


@pytest.fixture(scope="module")
def tokenizer(tiny_text_checkpoint):
    return AutoTokenizer.from_pretrained(tiny_text_checkpoint)


@pytest.fixture(scope="module")
def modelfile_template(tiny_text_gguf_factory, tiny_text_checkpoint, tmp_path_factory) -> str:
    """The TEMPLATE as Ollama's parser reads it back from the written Modelfile."""
    path, _ = write_modelfile(tiny_text_gguf_factory("f16"), tmp_path_factory.mktemp("mf") / "Modelfile",
                              checkpoint=tiny_text_checkpoint)
    (template,) = [c.args for c in parse(path.read_text()) if c.name == "template"]
    return template


def transformers_prompt(tokenizer, messages) -> str:
    continues = messages[-1]["role"] == "assistant"
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not continues,
                                         continue_final_message=continues)


def test_go_template_renders_what_transformers_renders(go_render, modelfile_template, tokenizer):
    conversations = [[{"role": r, "content": c} for r, c in turns] for turns in CONVERSATIONS.values()]
    rendered = go_render(modelfile_template, conversations)
    for name, messages, go_text in zip(CONVERSATIONS, conversations, rendered):
        # The runtime adds BOS (tokenizer.ggml.add_bos_token), so the TEMPLATE leaves it out.
        assert tokenizer.bos_token + go_text == transformers_prompt(tokenizer, messages), name


def test_system_is_folded_into_the_first_user_turn_not_a_turn_of_its_own(go_render, modelfile_template):
    (text,) = go_render(modelfile_template, [[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]])
    assert text.count("<start_of_turn>user") == 1 and "S\n\nU" in text


def test_the_hand_written_probes_are_what_transformers_renders(tokenizer):
    for probe in PROBES:
        assert tokenizer.bos_token + probe.expected == transformers_prompt(tokenizer, probe.as_dicts()), probe.name


def test_a_foreign_chat_template_is_refused():
    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(PackageError, match="not Gemma 3n's turn format"):
        check_gemma_format(chatml, "<bos>")
