"""What a Modelfile takes from the GGUF files and, when given, the checkpoint they came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gguf import Keys

from gemma3n_gguf.core.errors import GGUFFileError, PackageError
from gemma3n_gguf.core.gguf_read import GGUFFile, open_gguf
from gemma3n_gguf.package.chat_template import END_OF_TURN

LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "license.txt")

# Ollama PARAMETER <- GGUF general.sampling.* key (llama.cpp's names).
GGUF_SAMPLING_KEYS = {
    "temperature": Keys.General.SAMPLING_TEMP,
    "top_k": Keys.General.SAMPLING_TOP_K,
    "top_p": Keys.General.SAMPLING_TOP_P,
    "min_p": Keys.General.SAMPLING_MIN_P,
    "repeat_penalty": Keys.General.SAMPLING_PENALTY_REPEAT,
    "repeat_last_n": Keys.General.SAMPLING_PENALTY_LAST_N,
}


@dataclass(frozen=True)
class ChatFacts:
    """The text GGUF's chat template and the special tokens around it."""

    chat_template: str
    bos_token: str
    add_bos_token: bool
    name: str


@dataclass(frozen=True)
class Sampling:
    values: dict[str, float | int]
    source: str  # said to the user: where the values came from


def read_chat_facts(model: Path) -> ChatFacts:
    gguf = open_gguf(model)
    if gguf.architecture != "gemma3n":
        raise GGUFFileError(f"{model} is not a Gemma 3n text GGUF (general.architecture is {gguf.architecture!r})")
    template = gguf.value(Keys.Tokenizer.CHAT_TEMPLATE)
    if not isinstance(template, str):
        raise PackageError(f"{model} has no tokenizer.chat_template; convert it from a checkpoint that has one")
    tokens = gguf.fields[Keys.Tokenizer.LIST]
    if END_OF_TURN not in _token_texts(tokens):
        raise PackageError(f"{model} has no {END_OF_TURN} token, which Gemma's turns end with")
    return ChatFacts(chat_template=template, bos_token=tokens.contents(int(gguf.value(Keys.Tokenizer.BOS_ID))),
                     add_bos_token=gguf.value(Keys.Tokenizer.ADD_BOS) in (None, True),
                     name=str(gguf.value(Keys.General.NAME) or model.stem))


def _token_texts(field) -> set[str]:
    # Only the special-looking entries are decoded: a 262k vocabulary decodes slowly as a whole.
    return {bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data
            if bytes(field.parts[i][:1]) == b"<"}


def check_projector(path: Path) -> None:
    kind = open_gguf(path).value(Keys.General.TYPE)
    if kind not in ("mmproj", "projector"):
        raise GGUFFileError(f"{path} is not a projector GGUF (general.type is {kind!r}); give the mmproj-*.gguf file")


def read_sampling(model: Path, checkpoint: Path | None) -> Sampling:
    """The checkpoint's generation_config.json when given and present, else the GGUF's own keys."""
    if checkpoint is not None and (checkpoint / "generation_config.json").is_file():
        return Sampling(_generation_config_sampling(checkpoint), f"{checkpoint / 'generation_config.json'}")
    values = _gguf_sampling(open_gguf(model))
    if values:
        return Sampling(values, f"{model.name} general.sampling.*")
    return Sampling({}, "none: the GGUF has no general.sampling.* keys (give --checkpoint for generation_config.json)")


def _generation_config_sampling(checkpoint: Path) -> dict[str, float | int]:
    """What transformers samples with: the file's values, transformers' own defaults for the rest."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(checkpoint)
    except Exception as exc:  # transformers raises OSError/ValueError/JSONDecodeError on bad files
        raise PackageError(f"{checkpoint / 'generation_config.json'} is unreadable: {exc}") from exc
    defaults = GenerationConfig._get_default_generation_params()
    value = {name: getattr(config, name) if getattr(config, name) is not None else defaults.get(name)
             for name in ("do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty")}
    if not value["do_sample"]:
        return {"temperature": 0}  # greedy, as Ollama does at temperature 0
    return {"temperature": float(value["temperature"]), "top_k": int(value["top_k"]), "top_p": float(value["top_p"]),
            "min_p": float(value["min_p"] or 0.0), "repeat_penalty": float(value["repetition_penalty"])}


def _gguf_sampling(gguf: GGUFFile) -> dict[str, float | int]:
    return {name: value for name, key in GGUF_SAMPLING_KEYS.items() if (value := gguf.value(key)) is not None}


def read_license(checkpoint: Path | None) -> str | None:
    if checkpoint is None:
        return None
    for name in LICENSE_FILES:
        if (checkpoint / name).is_file():
            return (checkpoint / name).read_text(encoding="utf-8").strip()
    return None
