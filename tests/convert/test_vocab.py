"""Reading a checkpoint's tokenizer into the GGUF vocabulary, and writing it."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import gguf
import pytest
from sentencepiece import sentencepiece_model_pb2

from gemma3n_gguf.model.vocab import Vocab, read_vocab, tokenization_corpus, write_vocab
from gemma3n_gguf.core.errors import CheckpointError
from gemma3n_gguf.fixtures.tokenizer import CHAT_TEMPLATE, write_tokenizer

T = gguf.TokenType
Piece = sentencepiece_model_pb2.ModelProto.SentencePiece

# (piece, score, SentencePiece type) of a small hand-made model
PIECES = [
    ("<pad>", 0.0, Piece.CONTROL),
    ("<eos>", 0.0, Piece.CONTROL),
    ("<bos>", 0.0, Piece.CONTROL),
    ("<unk>", 0.0, Piece.UNKNOWN),
    ("<start_of_turn>", 0.0, Piece.USER_DEFINED),
    ("<0x41>", 0.0, Piece.BYTE),
    ("\u2581a", -1.5, Piece.NORMAL),
    ("b", -2.5, Piece.NORMAL),
    ("<unused0>", 0.0, Piece.UNUSED),
]


def write_spm(path: Path, pieces=PIECES, *, bos_id=2, eos_id=1, pad_id=0, unk_id=3) -> None:
    proto = sentencepiece_model_pb2.ModelProto()
    for text, score, kind in pieces:
        proto.pieces.add(piece=text, score=score, type=kind)
    proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = bos_id, eos_id
    proto.trainer_spec.pad_id, proto.trainer_spec.unk_id = pad_id, unk_id
    proto.normalizer_spec.add_dummy_prefix = False
    path.write_bytes(proto.SerializeToString())


def added(content: str, special: bool) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": special}


def write_config(directory: Path, **config) -> None:
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    write_spm(tmp_path / "tokenizer.model")
    write_config(
        tmp_path,
        add_bos_token=True, add_eos_token=False,
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        chat_template="{{ bos_token }}{{ messages[0]['content'] }}",
        added_tokens_decoder={
            "2": added("<bos>", True),
            "4": added("<start_of_turn>", True),
            "10": added("<my\u2581word>", False),
            "12": added("<end_of_image>", True),
        },
    )
    return tmp_path


# -- padding and overrides -------------------------------------------------------------------
def test_pieces_keep_their_place_score_and_type(checkpoint):
    vocab = read_vocab(checkpoint, 14)
    assert vocab.tokens[5:9] == ("<0x41>", "\u2581a", "b", "<unused0>")
    assert vocab.scores[5:9] == (0.0, -1.5, -2.5, 0.0)
    assert vocab.token_types[:9] == (
        T.CONTROL, T.CONTROL, T.CONTROL, T.UNKNOWN, T.CONTROL, T.BYTE, T.NORMAL, T.NORMAL, T.UNUSED,
    )
    assert vocab.scores[:4] == (0.0, 0.0, -1000.0, 0.0)  # only <bos> was overridden


def test_ids_beyond_the_pieces_are_padding(checkpoint):
    vocab = read_vocab(checkpoint, 14)
    assert len(vocab) == 14
    for token_id in (9, 11, 13):
        assert vocab.tokens[token_id] == f"[PAD{token_id}]"
        assert vocab.scores[token_id] == -10000.0
        assert vocab.token_types[token_id] == T.UNUSED


def test_added_tokens_override_ids(checkpoint):
    vocab = read_vocab(checkpoint, 14)
    assert (vocab.tokens[4], vocab.token_types[4], vocab.scores[4]) == ("<start_of_turn>", T.CONTROL, -1000.0)
    assert (vocab.tokens[12], vocab.token_types[12], vocab.scores[12]) == ("<end_of_image>", T.CONTROL, -1000.0)
    # not special: user-defined, with SentencePiece's space marker turned back into a space
    assert (vocab.tokens[10], vocab.token_types[10], vocab.scores[10]) == ("<my word>", T.USER_DEFINED, -1000.0)


def test_without_padding_the_vocab_is_exactly_the_pieces(tmp_path):
    write_spm(tmp_path / "tokenizer.model")
    vocab = read_vocab(tmp_path, len(PIECES))
    assert vocab.tokens == tuple(text for text, _, _ in PIECES)
    assert not any(token.startswith("[PAD") for token in vocab.tokens)


# -- special ids, flags, chat template --------------------------------------------------------
def test_special_ids_and_flags_come_from_tokenizer_config(checkpoint):
    vocab = read_vocab(checkpoint, 14)
    assert (vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.unk_id) == (2, 1, 0, 3)
    assert (vocab.add_bos, vocab.add_eos, vocab.add_space_prefix) == (True, False, False)
    assert vocab.chat_template == "{{ bos_token }}{{ messages[0]['content'] }}"


def test_config_tokens_name_ids_even_when_they_differ_from_sentencepiece(checkpoint):
    write_config(checkpoint, eos_token="<start_of_turn>", add_eos_token=True)
    vocab = read_vocab(checkpoint, 14)
    assert vocab.eos_id == 4
    assert vocab.add_eos is True


def test_without_config_special_ids_come_from_sentencepiece(tmp_path):
    write_spm(tmp_path / "tokenizer.model", bos_id=1, eos_id=2, pad_id=-1, unk_id=3)
    vocab = read_vocab(tmp_path, 10)
    assert (vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.unk_id) == (1, 2, None, 3)
    assert (vocab.add_bos, vocab.add_eos) == (True, False)  # GemmaTokenizer defaults
    assert vocab.chat_template is None


def test_chat_template_jinja_file_takes_priority(checkpoint):
    (checkpoint / "chat_template.jinja").write_text("from the file", encoding="utf-8")
    assert read_vocab(checkpoint, 14).chat_template == "from the file"


def test_named_chat_templates_are_kept(checkpoint):
    write_config(checkpoint, chat_template=[
        {"name": "tool_use", "template": "tools"}, {"name": "default", "template": "chat"},
    ])
    vocab = read_vocab(checkpoint, 14)
    assert vocab.chat_template == "chat"
    assert vocab.named_chat_templates == (("tool_use", "tools"),)


# -- errors ----------------------------------------------------------------------------------
def test_missing_tokenizer_model_is_an_actionable_error(tmp_path):
    write_config(tmp_path, bos_token="<bos>")
    with pytest.raises(CheckpointError, match="tokenizer.model is missing: copy it from the original release"):
        read_vocab(tmp_path, 10)


def test_corrupt_tokenizer_model_is_reported(tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(CheckpointError, match="tokenizer.model"):
        read_vocab(tmp_path, 10)


def test_more_pieces_than_vocab_size_is_an_error(checkpoint):
    with pytest.raises(CheckpointError, match="has 9 pieces but the model's vocab_size is 8"):
        read_vocab(checkpoint, 8)


def test_added_token_beyond_vocab_size_is_an_error(checkpoint):
    with pytest.raises(CheckpointError, match="'<end_of_image>' with id 12, outside the model's vocab_size 12"):
        read_vocab(checkpoint, 12)


def test_config_naming_a_token_not_in_the_vocab_is_an_error(checkpoint):
    write_config(checkpoint, bos_token="<s>")
    with pytest.raises(CheckpointError, match="bos_token '<s>'"):
        read_vocab(checkpoint, 14)


def test_vocab_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        Vocab(tokens=("a", "b"), scores=(0.0,), token_types=(T.NORMAL, T.NORMAL), bos_id=None, eos_id=None,
              pad_id=None, unk_id=None, add_bos=True, add_eos=False, add_space_prefix=False, chat_template=None)


# -- GGUF keys -------------------------------------------------------------------------------
def field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


def test_write_vocab_round_trips_through_a_gguf_file(checkpoint, tmp_path):
    vocab = read_vocab(checkpoint, 14)
    path = tmp_path / "vocab.gguf"
    writer = gguf.GGUFWriter(path, "gemma3n")
    write_vocab(writer, vocab)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    reader = gguf.GGUFReader(path)
    assert field(reader, "tokenizer.ggml.model") == "llama"
    assert field(reader, "tokenizer.ggml.pre") == "default"
    assert field(reader, "tokenizer.ggml.tokens") == list(vocab.tokens)
    assert field(reader, "tokenizer.ggml.scores") == pytest.approx(list(vocab.scores))
    assert field(reader, "tokenizer.ggml.token_type") == [int(t) for t in vocab.token_types]
    assert field(reader, "tokenizer.ggml.bos_token_id") == 2
    assert field(reader, "tokenizer.ggml.eos_token_id") == 1
    assert field(reader, "tokenizer.ggml.padding_token_id") == 0
    assert field(reader, "tokenizer.ggml.unknown_token_id") == 3
    assert field(reader, "tokenizer.ggml.add_bos_token") is True
    assert field(reader, "tokenizer.ggml.add_eos_token") is False
    assert field(reader, "tokenizer.ggml.add_space_prefix") is False
    assert field(reader, "tokenizer.chat_template") == vocab.chat_template


# -- the fixture tokenizer as the converter sees it ------------------------------------------
def test_fixture_tokenizer_reads_as_the_full_gemma3n_vocab(tmp_path):
    layout = write_tokenizer(tmp_path, text_vocab_size=512, seed=0)
    vocab = read_vocab(tmp_path, 768)
    assert len(vocab) == 768
    hard = {512: "<end_of_image>", 513: "<image_soft_token>", 640: "<end_of_audio>", 641: "<audio_soft_token>"}
    for token_id, token in hard.items():
        assert (vocab.tokens[token_id], vocab.token_types[token_id]) == (token, T.CONTROL)
    in_spm = {6: "<start_of_turn>", 7: "<end_of_turn>", 8: "<start_of_image>", 9: "<start_of_audio>"}
    for token_id, token in in_spm.items():
        assert (vocab.tokens[token_id], vocab.token_types[token_id]) == (token, T.CONTROL)
    assert vocab.token_types.count(T.BYTE) == 256
    assert not any(token.startswith("[PAD") for token in vocab.tokens)  # all 256 hard ids are declared
    assert (vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.unk_id) == (2, 1, 0, 3)
    assert (vocab.add_bos, vocab.add_eos, vocab.add_space_prefix) == (True, False, False)
    assert vocab.chat_template == CHAT_TEMPLATE
    assert (layout.vocab_size, layout.eoi, layout.eoa) == (768, 512, 640)


# -- probe strings for the llama.cpp/transformers comparison ---------------------------------
SPECIAL_TOKENS = ("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                  "<image_soft_token>", "<start_of_audio>", "<end_of_audio>", "<audio_soft_token>")


def test_tokenization_corpus_covers_scripts_specials_and_chat():
    corpus = tokenization_corpus()
    assert len(corpus) == len(set(corpus))
    text = "".join(corpus)
    for token in SPECIAL_TOKENS:
        assert token in corpus, token  # alone
    scripts = {"CYRILLIC", "ARABIC", "CJK", "HIRAGANA", "HANGUL", "DEVANAGARI"}
    names = {unicodedata.name(char, "").split(" ")[0] for char in text}
    assert scripts <= names
    assert any(unicodedata.category(char) == "So" for char in text)  # emoji and symbols
    transcripts = [s for s in corpus if s.startswith("<bos><start_of_turn>user\n")]
    assert len(transcripts) >= 3 and all(s.endswith("<start_of_turn>model\n") for s in transcripts)


@pytest.mark.slow
def test_chat_transcripts_in_the_corpus_are_what_the_template_renders(tmp_path):
    from transformers import AutoTokenizer

    write_tokenizer(tmp_path, text_vocab_size=512)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    conversations = [
        [{"role": "user", "content": "Hi!"}],
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2+2?"},
         {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}],
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]}],
        [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe this."}]}],
    ]
    rendered = [tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
                for conversation in conversations]
    transcripts = [s for s in tokenization_corpus() if s.startswith("<bos><start_of_turn>")]
    assert rendered == transcripts
