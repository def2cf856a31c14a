"""Which token ids both models see, and whether the GGUF's tokenizer agrees with the reference.

Decision: the ids come from the reference checkpoint's own tokenizer (transformers), BOS
added, as transformers users feed the model. The reference is ground truth, and ids that do
not depend on the candidate make the cached reference pass reusable by every candidate, a
candidate with a broken tokenizer included. Each candidate's own tokenizer (llama.cpp,
vocabulary only) then tokenizes the same text; disagreement is reported, not fatal, because
the logits comparison on identical ids still measures the weights. Only a reference
directory without tokenizer files falls back to the GGUF's tokenizer, and the report says so.

Special-token text (``<start_of_turn>``...) is parsed by both, the way transformers does.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gemma3n_gguf.core.errors import CheckpointError, ValidationError
from gemma3n_gguf.reference.llama_runner import tokenize_with_llama

SOURCE_REFERENCE = "reference (transformers tokenizer of the checkpoint)"
SOURCE_GGUF = "gguf (llama.cpp tokenizer of the first candidate; the reference has no tokenizer files)"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


@dataclass(frozen=True)
class TokenizerAgreement:
    """How the candidate's tokenizer compares with the ids both models were evaluated on."""

    source: str
    agree: bool
    n_reference: int
    n_candidate: int
    first_difference: int | None
    """Index of the first differing id (``None`` when they agree)."""

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def has_tokenizer(checkpoint_dir: str | os.PathLike[str]) -> bool:
    return any((Path(checkpoint_dir) / name).is_file() for name in _TOKENIZER_FILES)


def reference_token_ids(checkpoint_dir: str | os.PathLike[str], text: str) -> NDArray[np.int32]:
    """The checkpoint tokenizer's ids for ``text``, BOS first."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ValidationError(f"the reference tokenizer needs transformers: {exc}") from exc
    # The "sequence longer than the maximum" warning is about running, not tokenizing.
    logger = logging.getLogger("transformers.tokenization_utils_base")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the tokenizer of {checkpoint_dir}: {exc}") from exc
    finally:
        logger.setLevel(previous)
    return np.asarray(ids, dtype=np.int32)


def gguf_token_ids(gguf_path: str | os.PathLike[str], text: str) -> NDArray[np.int32]:
    """The GGUF's own ids for ``text``: BOS added if its vocabulary says so, specials parsed."""
    return np.asarray(tokenize_with_llama(gguf_path, text, add_bos=True, special=True), dtype=np.int32)


def compare_tokenizers(
    evaluated: NDArray[np.int32], candidate: NDArray[np.int32], source: str
) -> TokenizerAgreement:
    """Compare the evaluated ids with a candidate tokenizer's ids for the same text."""
    n = min(len(evaluated), len(candidate))
    differing = np.flatnonzero(evaluated[:n] != candidate[:n])
    if differing.size:
        first: int | None = int(differing[0])
    elif len(evaluated) != len(candidate):
        first = n
    else:
        first = None
    return TokenizerAgreement(source, first is None, len(evaluated), len(candidate), first)
