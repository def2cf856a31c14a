"""Does a GGUF belong to a reference checkpoint? Checked from metadata before any model runs.

A candidate must be a gemma3n text GGUF with the reference's layer count and embedding size.
Vocabularies are compared explicitly: the current converter (and ours) writes Gemma 3n's
full 262,400 ids, older ones (the June 2025 llama.cpp converter behind many public uploads,
Ollama's blobs) only the 262,144 text ids. Such a file is refused unless the caller asks for
alignment, which compares both models over the ids they share, each distribution
renormalised over them: the 256 multimodal ids the short file lacks never occur in text,
but transformers gives them probability mass, so this is a different (still meaningful)
comparison and the report says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.core.checkpoint import read_json_object
from gemma3n_gguf.core.errors import CheckpointError, ConfigError, GGUFFileError, ValidationError
from gemma3n_gguf.core.gguf_read import GGUFFile, open_gguf

ARCHITECTURE = "gemma3n"


@dataclass(frozen=True)
class GGUFModelInfo:
    """What validation needs to know about a candidate GGUF, from its metadata alone."""

    path: Path
    architecture: str
    n_layer: int
    n_embd: int
    n_vocab: int
    file_bytes: int
    bits_per_weight: float
    file_type: int | None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> GGUFModelInfo:
        gguf = open_gguf(path)
        arch = str(gguf.architecture or "unknown")
        if arch != ARCHITECTURE:
            raise GGUFFileError(_wrong_architecture(Path(path), arch))
        if "tokenizer.ggml.tokens" not in gguf:
            raise GGUFFileError(f"{path} has no tokenizer (tokenizer.ggml.tokens): llama.cpp cannot run it")
        n_params = sum(int(t.n_elements) for t in gguf.tensors)
        n_bytes = sum(int(t.n_bytes) for t in gguf.tensors)
        return cls(
            path=Path(path),
            architecture=arch,
            n_layer=int(_required(gguf, f"{arch}.block_count")),
            n_embd=int(_required(gguf, f"{arch}.embedding_length")),
            n_vocab=gguf.array_length("tokenizer.ggml.tokens"),
            file_bytes=Path(path).stat().st_size,
            bits_per_weight=8 * n_bytes / n_params if n_params else 0.0,
            file_type=gguf.value("general.file_type"),
        )


@dataclass(frozen=True)
class ReferenceInfo:
    """The reference checkpoint's text shape and special ids, from its config.json."""

    directory: Path
    n_layer: int
    n_embd: int
    n_vocab: int
    n_text_vocab: int
    """``vocab_size_per_layer_input``: the ids below the 256 multimodal ones."""
    bos_id: int | None

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> ReferenceInfo:
        root = Path(directory)
        config_path = root / "config.json"
        if not root.is_dir():
            raise CheckpointError(f"reference {root} is not a directory (expected a Hugging Face checkpoint)")
        if not config_path.is_file():
            raise CheckpointError(f"{root} has no config.json: not a Hugging Face checkpoint")
        config = read_json_object(config_path)
        text = TextConfig.from_hf(config)
        text_section = config.get("text_config", config)
        bos = text_section.get("bos_token_id", config.get("bos_token_id"))
        if bos is not None and (not isinstance(bos, int) or isinstance(bos, bool) or bos < 0):
            raise ConfigError(f"{config_path}: bos_token_id must be a token id, not {bos!r}")
        return cls(root, text.num_layers, text.hidden_size, text.vocab_size,
                   text.vocab_size_per_layer_input, None if bos is None else int(bos))


def compared_vocab(model: GGUFModelInfo, reference: ReferenceInfo, *, align_vocab: bool) -> int:
    """How many leading vocabulary ids to compare; raises if the GGUF does not fit the reference."""
    where = f"{model.path.name} vs {reference.directory}"
    if model.n_layer != reference.n_layer:
        raise ValidationError(
            f"{where}: the GGUF has {model.n_layer} layers, the reference {reference.n_layer}; "
            "they are different models (an E2B file against an E4B checkpoint?)"
        )
    if model.n_embd != reference.n_embd:
        raise ValidationError(
            f"{where}: the GGUF's embedding size is {model.n_embd}, the reference's {reference.n_embd}; "
            "they are different models"
        )
    if model.n_vocab == reference.n_vocab:
        return model.n_vocab
    if align_vocab:
        return min(model.n_vocab, reference.n_vocab)
    raise ValidationError(f"{where}: {_vocab_mismatch(model, reference)}")


def _vocab_mismatch(model: GGUFModelInfo, reference: ReferenceInfo) -> str:
    message = f"the GGUF has {model.n_vocab:,} tokens, the reference {reference.n_vocab:,}. "
    if model.n_vocab == reference.n_text_vocab:
        message += (
            "It lacks the 256 multimodal token ids, as files from older converters do "
            "(llama.cpp's June 2025 converter, Ollama blobs). "
        )
    shared = min(model.n_vocab, reference.n_vocab)
    return message + (
        f"Logits over different vocabularies cannot be compared as they are: pass --align-vocab to "
        f"compare both models over the first {shared:,} ids (each renormalised over them), or "
        "reconvert the checkpoint with gemma3n-gguf convert"
    )


def _wrong_architecture(path: Path, arch: str) -> str:
    if arch == "clip":
        return (f"{path} is a multimodal projector (mmproj), not a text model: give the text GGUF "
                "first and the projector with --mmproj")
    return (f"{path} is a {arch!r} model, not {ARCHITECTURE}: validation compares Gemma 3n GGUFs "
            "with the Gemma 3n checkpoint they were made from")


def _required(gguf: GGUFFile, key: str):
    value = gguf.value(key)
    if value is None:
        raise GGUFFileError(f"{gguf.path} lacks the metadata key {key}; it was not written by a Gemma 3n converter")
    return value
