"""The GGUF's tokenizer and chat template behave exactly like transformers' on the same files."""

from __future__ import annotations

import pytest
from gguf import GGUFReader

from gemma3n_gguf.model.vocab import tokenization_corpus
from gemma3n_gguf.reference.llama_runner import tokenize_with_llama

pytestmark = pytest.mark.slow

CONVERSATIONS = [
    [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "And of Japan? 日本の首都は?"},
    ],
    [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  Describe this picture.  "}]},
    ],
    [
        {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe, bitte."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Guten Tag."}]},
    ],
]


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_text_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_text_checkpoint)


@pytest.mark.parametrize("text", tokenization_corpus())
def test_llama_cpp_token_ids_equal_transformers(text, hf_tokenizer, tiny_text_f32_gguf):
    expected = hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenize_with_llama(tiny_text_f32_gguf, text, add_bos=False, special=True) == expected


def test_bos_is_added_like_transformers(hf_tokenizer, tiny_text_f32_gguf):
    text = "Hello world"
    assert tokenize_with_llama(tiny_text_f32_gguf, text, add_bos=True) == hf_tokenizer(text)["input_ids"]


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["system-and-turns", "image", "audio"])
def test_gguf_chat_template_renders_like_transformers(messages, hf_tokenizer, tiny_text_f32_gguf):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    reader = GGUFReader(tiny_text_f32_gguf)
    field = reader.fields["tokenizer.chat_template"]
    template = bytes(field.parts[field.data[0]]).decode()
    rendered = Jinja2ChatFormatter(template, eos_token="<eos>", bos_token="<bos>")(messages=messages).prompt
    expected = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == expected
    assert rendered.endswith("<start_of_turn>model\n")
