"""A checkpoint's SentencePiece tokenizer as the GGUF vocabulary llama.cpp reads.

Gemma 3n uses llama.cpp's SentencePiece tokenizer (``tokenizer.ggml.model = "llama"``): the
token list, scores and types come from ``tokenizer.model``, padded to the model's full
``vocab_size`` (262400, not the 262144 pieces of ``vocab_size_per_layer_input``), and the
added tokens override ids, as the reference converter's ``_set_vocab_sentencepiece`` does.

Added tokens live where transformers put them when it saved the tokenizer: 4.x writes
``added_tokens_decoder`` into ``tokenizer_config.json``; 5.x writes them only into
``tokenizer.json``'s ``added_tokens``. Both are read (they must agree), and the multimodal
markers must sit at the ids ``config.json`` gives them: a vocabulary with ``[PAD262144]`` where
``<end_of_image>`` belongs converts, but mtmd and the chat template cannot find the token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gguf
from google.protobuf.message import DecodeError
from sentencepiece import sentencepiece_model_pb2

from gemma3n_gguf.core.errors import CheckpointError

TOKENIZER_MODEL = "tokenizer.model"
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_JSON = "tokenizer.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

PAD_SCORE = -10000.0  # ids the tokenizer does not fill: "[PAD<id>]", never produced
ADDED_TOKEN_SCORE = -1000.0

_Piece = sentencepiece_model_pb2.ModelProto.SentencePiece
_TOKEN_TYPES = {
    _Piece.NORMAL: gguf.TokenType.NORMAL,
    _Piece.UNKNOWN: gguf.TokenType.UNKNOWN,
    _Piece.CONTROL: gguf.TokenType.CONTROL,
    _Piece.USER_DEFINED: gguf.TokenType.USER_DEFINED,
    _Piece.BYTE: gguf.TokenType.BYTE,
    _Piece.UNUSED: gguf.TokenType.UNUSED,
}


@dataclass(frozen=True)
class SpmPiece:
    text: str
    score: float
    token_type: gguf.TokenType


@dataclass(frozen=True)
class AddedToken:
    """One ``added_tokens_decoder`` entry of tokenizer_config.json."""

    id: int
    content: str
    special: bool


@dataclass(frozen=True)
class Vocab:
    """Everything the ``tokenizer.*`` GGUF keys hold."""

    tokens: tuple[str, ...]
    scores: tuple[float, ...]
    token_types: tuple[gguf.TokenType, ...]
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool
    chat_template: str | None
    # Extra templates by name (tokenizer_config may hold a list such as default + tool_use).
    named_chat_templates: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not len(self.tokens) == len(self.scores) == len(self.token_types):
            raise ValueError(
                f"tokens, scores and token_types differ in length: "
                f"{len(self.tokens)}, {len(self.scores)}, {len(self.token_types)}"
            )

    def __len__(self) -> int:
        return len(self.tokens)


# config.json id key -> (tokenizer_config.json key naming the token, the token Gemma 3n ships)
MULTIMODAL_TOKENS: dict[str, tuple[str, str]] = {
    "boi_token_id": ("boi_token", "<start_of_image>"),
    "eoi_token_id": ("eoi_token", "<end_of_image>"),
    "image_token_id": ("image_token", "<image_soft_token>"),
    "boa_token_id": ("boa_token", "<start_of_audio>"),
    "eoa_token_id": ("eoa_token", "<end_of_audio>"),
    "audio_token_id": ("audio_token", "<audio_soft_token>"),
}


def read_vocab(directory: str | Path, vocab_size: int, model_config: dict | None = None) -> Vocab:
    """Read ``directory``'s tokenizer files into a vocabulary of exactly ``vocab_size`` tokens.

    ``model_config`` (config.json) is checked for multimodal token ids the vocabulary agrees with.
    """
    directory = Path(directory)
    model = read_spm_model(directory / TOKENIZER_MODEL)
    config = _read_tokenizer_config(directory / TOKENIZER_CONFIG)
    pieces = [_spm_piece(piece) for piece in model.pieces]
    added = merge_added_tokens(tokenizer_json_added_tokens(directory / TOKENIZER_JSON), added_tokens(config))
    tokens, scores, token_types = assemble_vocab(pieces, added, vocab_size)
    check_multimodal_ids(tokens, model_config or {}, config)
    ids = _SpecialIds(tokens, model.trainer_spec, config)
    chat_template, named_templates = _read_chat_templates(directory, config)
    return Vocab(
        tokens=tuple(tokens),
        scores=tuple(scores),
        token_types=tuple(token_types),
        bos_id=ids.resolve("bos"),
        eos_id=ids.resolve("eos"),
        pad_id=ids.resolve("pad"),
        unk_id=ids.resolve("unk"),
        # GemmaTokenizer's defaults when the config does not say
        add_bos=bool(config.get("add_bos_token", True)),
        add_eos=bool(config.get("add_eos_token", False)),
        add_space_prefix=model.normalizer_spec.add_dummy_prefix,
        chat_template=chat_template,
        named_chat_templates=named_templates,
    )


def read_spm_model(path: Path) -> sentencepiece_model_pb2.ModelProto:
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing: copy it from the original release; llama.cpp needs the "
            "SentencePiece model (without it the token list cannot be built)"
        )
    model = sentencepiece_model_pb2.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise CheckpointError(f"{path} is not a SentencePiece model ({exc}); re-download it") from exc
    if not model.pieces:
        raise CheckpointError(f"{path} holds no SentencePiece pieces; re-download it")
    return model


def assemble_vocab(
    pieces: list[SpmPiece], added: list[AddedToken], vocab_size: int
) -> tuple[list[str], list[float], list[gguf.TokenType]]:
    """Token list of length ``vocab_size``: pieces, then added-token overrides, rest padding."""
    if len(pieces) > vocab_size:
        raise CheckpointError(
            f"{TOKENIZER_MODEL} has {len(pieces)} pieces but the model's vocab_size is {vocab_size}: "
            "the tokenizer does not belong to this checkpoint"
        )
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    scores = [PAD_SCORE] * vocab_size
    token_types = [gguf.TokenType.UNUSED] * vocab_size
    for i, piece in enumerate(pieces):
        tokens[i], scores[i], token_types[i] = piece.text, piece.score, piece.token_type
    for token in added:
        if not 0 <= token.id < vocab_size:
            raise CheckpointError(
                f"the tokenizer adds token {token.content!r} with id {token.id}, outside the "
                f"model's vocab_size {vocab_size}: the tokenizer does not belong to this checkpoint"
            )
        if token.special:
            tokens[token.id], token_types[token.id] = token.content, gguf.TokenType.CONTROL
        else:
            # llama.cpp matches user-defined tokens against raw text, where spaces are still spaces
            tokens[token.id] = token.content.replace("\u2581", " ")
            token_types[token.id] = gguf.TokenType.USER_DEFINED
        scores[token.id] = ADDED_TOKEN_SCORE
    return tokens, scores, token_types


def added_tokens(tokenizer_config: dict) -> list[AddedToken]:
    entries = tokenizer_config.get("added_tokens_decoder") or {}
    try:
        return [
            AddedToken(int(token_id), entry["content"], bool(entry.get("special", False)))
            for token_id, entry in sorted(entries.items(), key=lambda item: int(item[0]))
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{TOKENIZER_CONFIG} has a malformed added_tokens_decoder: {exc!r}") from exc


def tokenizer_json_added_tokens(path: Path) -> list[AddedToken]:
    """The ``added_tokens`` of a fast tokenizer's ``tokenizer.json`` (none if there is no file)."""
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("added_tokens") or []
        return [AddedToken(int(e["id"]), str(e["content"]), bool(e.get("special", False))) for e in entries]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has malformed added_tokens: {exc!r}") from exc


def merge_added_tokens(from_json: list[AddedToken], from_config: list[AddedToken]) -> list[AddedToken]:
    """One token per id from both files; an id the two files fill differently is refused."""
    merged = {token.id: token for token in from_json}
    for token in from_config:
        other = merged.setdefault(token.id, token)
        if other.content != token.content:
            raise CheckpointError(
                f"{TOKENIZER_JSON} and {TOKENIZER_CONFIG} disagree on added token {token.id} "
                f"({other.content!r} vs {token.content!r}): the tokenizer files come from different models")
    return [merged[i] for i in sorted(merged)]


def check_multimodal_ids(tokens: list[str], model_config: dict, tokenizer_config: dict) -> None:
    """Refuse a vocabulary whose multimodal markers are not at the ids config.json gives them."""
    wrong = []
    for id_key, (token_key, default) in MULTIMODAL_TOKENS.items():
        token_id = model_config.get(id_key)
        if not isinstance(token_id, int):
            continue
        expected = tokenizer_config.get(token_key) if isinstance(tokenizer_config.get(token_key), str) else default
        found = tokens[token_id] if 0 <= token_id < len(tokens) else "nothing (outside the vocabulary)"
        if found != expected:
            wrong.append(f"{id_key} {token_id} is {found!r}, not {expected!r}")
    if wrong:
        raise CheckpointError(
            "the tokenizer disagrees with config.json on multimodal tokens (" + "; ".join(wrong) + "): "
            f"its added tokens are missing from {TOKENIZER_CONFIG} and {TOKENIZER_JSON}, or it belongs to "
            "another model; copy the tokenizer files of the original release")


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    """Add the ``tokenizer.*`` keys of a SentencePiece ("llama") vocabulary."""
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(list(vocab.tokens))
    writer.add_token_scores(list(vocab.scores))
    writer.add_token_types(list(vocab.token_types))
    for token_id, add_id in (
        (vocab.bos_id, writer.add_bos_token_id),
        (vocab.eos_id, writer.add_eos_token_id),
        (vocab.unk_id, writer.add_unk_token_id),
        (vocab.pad_id, writer.add_pad_token_id),
    ):
        if token_id is not None:
            add_id(token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.named_chat_templates:
        named = [{"name": name, "template": template} for name, template in vocab.named_chat_templates]
        default = [{"name": "default", "template": vocab.chat_template}] if vocab.chat_template else []
        writer.add_chat_template(default + named)
    elif vocab.chat_template is not None:
        writer.add_chat_template(vocab.chat_template)


def _spm_piece(piece: sentencepiece_model_pb2.ModelProto.SentencePiece) -> SpmPiece:
    return SpmPiece(piece.piece, piece.score, _TOKEN_TYPES[piece.type])


def _read_tokenizer_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} should hold a JSON object")
    return config


class _SpecialIds:
    """bos/eos/pad/unk ids: tokenizer_config's token strings, else the SentencePiece trainer's ids."""

    def __init__(self, tokens: list[str], trainer_spec: sentencepiece_model_pb2.TrainerSpec, config: dict):
        self._first_id: dict[str, int] = {}
        for token_id, token in enumerate(tokens):
            self._first_id.setdefault(token, token_id)
        self._trainer_spec = trainer_spec
        self._config = config
        self._vocab_size = len(tokens)

    def resolve(self, kind: str) -> int | None:
        token = self._config.get(f"{kind}_token")
        if isinstance(token, dict):  # older configs store AddedToken dicts
            token = token.get("content")
        if isinstance(token, str):
            if token not in self._first_id:
                raise CheckpointError(
                    f"{TOKENIZER_CONFIG} names {kind}_token {token!r}, which is not in the vocabulary"
                )
            return self._first_id[token]
        spm_id = getattr(self._trainer_spec, f"{kind}_id")
        return spm_id if 0 <= spm_id < self._vocab_size else None


def _read_chat_templates(directory: Path, config: dict) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    # chat_template.jinja wins over tokenizer_config.json, as in transformers (the runtime the
    # GGUF is compared with); gguf-py's SpecialVocab prefers the config entry instead.
    jinja_file = directory / CHAT_TEMPLATE_FILE
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8"), ()
    template = config.get("chat_template")
    if template is None or isinstance(template, str):
        return template, ()
    if isinstance(template, list):
        named = {entry.get("name"): entry.get("template") for entry in template if isinstance(entry, dict)}
        default = named.pop("default", None)
        extra = tuple((name, text) for name, text in named.items() if name and isinstance(text, str))
        return default, extra
    raise CheckpointError(f"{TOKENIZER_CONFIG} has a chat_template of unexpected type {type(template).__name__}")


# Strings the integration test tokenizes with both llama.cpp and transformers (parse special
# tokens on, add_bos off, since the chat transcripts already start with <bos>). Written for
# this project; several are outside the fixture's training text to exercise byte fallback.
_PROBE_TEXT = (
    "Hello world",
    " leading space, trailing space ",
    "two  spaces, three   spaces and a\ttab",
    "line one\nline two\n\nafter a blank line\r\nwindows line end",
    "Version 3.10.12 costs $1,299.99 (about 1299 euros).",
    "Die Brücke über den Fluss wurde gestern eröffnet.",
    "Nous aimons les crêpes au chocolat et le café noir.",
    "¿Cuántos años tiene tu hermano pequeño?",
    "明日は雨が降るかもしれません。",
    "我们明天早上八点出发。",
    "Кошка спит на тёплом подоконнике.",
    "الشمس مشرقة والسماء صافية.",
    "안녕하세요, 만나서 반갑습니다.",  # Korean: not in the fixture corpus
    "नमस्ते दुनिया",  # Hindi: not in the fixture corpus
    "Ünïcödé ẞ ŉ ǅ ﬁ Å Ω ≈ ∑ ∞",
    "Emoji: 🤖🦜🧪 👩🏽‍💻 🏳️‍🌈 ✅",
    'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n',
    "    indented() // four spaces\n\t\ttwo tabs",
    "<div>&lt;not a tag&gt;</div> <b>bold</b>",
)

_PROBE_SPECIAL_TOKENS = (
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>",
    "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>",
    "<start_of_audio>", "<end_of_audio>", "<audio_soft_token>",
    "text<start_of_turn>between<end_of_turn>text",
    "Look: <start_of_image><image_soft_token><image_soft_token><end_of_image> done",
    "Listen: <start_of_audio><audio_soft_token><end_of_audio>",
)

# What the Gemma 3n chat template renders, written out by hand.
_PROBE_CHAT_TRANSCRIPTS = (
    "<bos><start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is 2+2?<end_of_turn>\n"
    "<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n"
    "<start_of_turn>model\n",
    "<bos><start_of_turn>user\n<image_soft_token>What is in this picture?<end_of_turn>\n"
    "<start_of_turn>model\n",
    "<bos><start_of_turn>user\n<audio_soft_token>Transcribe this.<end_of_turn>\n<start_of_turn>model\n",
)


def tokenization_corpus() -> list[str]:
    """Strings whose llama.cpp and transformers tokenizations must agree."""
    return [*_PROBE_TEXT, *_PROBE_SPECIAL_TOKENS, *_PROBE_CHAT_TRANSCRIPTS]
