"""The evaluation text: a user's file, or the multilingual text shipped in the package.

The default (``gemma3n_gguf/data/eval-text.txt``) was written for this project and is
public-domain-safe: about 13,500 characters of English prose, questions and answers, a
recipe, a Python function and a Markdown table, plus short passages in German, French,
Spanish, Italian, Portuguese, Dutch, Polish, Russian, Greek, Turkish, Arabic, Hebrew, Hindi,
Japanese, Chinese, Korean, Vietnamese, Indonesian and Swahili. Gemma's tokenizer makes
roughly 3,500-4,000 tokens of it, six or seven windows of 512.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gemma3n_gguf.core.errors import ValidationError

DEFAULT_TEXT_NAME = "default (gemma3n_gguf/data/eval-text.txt)"
_DEFAULT_RESOURCE = "eval-text.txt"


@dataclass(frozen=True)
class EvalText:
    """A text to evaluate on, with a name for reports and a digest for baselines."""

    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_TEXT_NAME


def default_eval_text() -> EvalText:
    """The multilingual evaluation text shipped in the package."""
    data = resources.files("gemma3n_gguf").joinpath("data", _DEFAULT_RESOURCE).read_text("utf-8")
    return EvalText(DEFAULT_TEXT_NAME, data)


def load_eval_text(source: str | os.PathLike[str] | EvalText | None) -> EvalText:
    """``None``: the packaged default; a path: that file (UTF-8); an :class:`EvalText`: itself."""
    if source is None:
        return default_eval_text()
    if isinstance(source, EvalText):
        return source
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"text file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ValidationError(f"text file {path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValidationError(f"cannot read text file {path}: {exc.strerror or exc}") from None
    if not text.strip():
        raise ValidationError(f"text file {path} is empty")
    return EvalText(str(path), text)
