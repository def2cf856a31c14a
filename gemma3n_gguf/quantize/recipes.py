"""Named quantization recipes in a TOML file, merged with command-line options.

A recipe is a top-level table named after it (format and example: docs/recipes.md)::

    [ple-q8]
    description = "Q4_K_M, with the PLE table in Q8_0"
    scheme = "Q4_K_M"
    ple_type = "Q8_0"
    tensor_type = ["attn_v=q6_k"]

Command-line options win over the recipe: a given scheme or type replaces the recipe's, and
command-line ``--tensor-type`` patterns are tried before the recipe's (first match wins).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.engine.planner import PlanOptions, parse_tensor_type_arg
from gemma3n_gguf.engine.schemes import Scheme, get_scheme

DEFAULT_SCHEME = "Q4_K_M"
_TYPE_KEYS = ("token_embedding_type", "ple_type", "output_tensor_type")
RECIPE_KEYS = ("description", "scheme", "tensor_type", *_TYPE_KEYS, "pure")


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    scheme: str | None = None
    tensor_type: tuple[str, ...] = ()  # "REGEX=TYPE", as on the command line
    token_embedding_type: str | None = None
    ple_type: str | None = None
    output_tensor_type: str | None = None
    pure: bool = False


def load_recipe(path: str | os.PathLike[str], name: str | None = None) -> Recipe:
    """The recipe ``name`` of a TOML file (``name`` may be left out if the file holds one)."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QuantizationError(f"cannot read recipe file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise QuantizationError(f"{path} is not valid TOML: {exc}") from exc
    recipes = {key: value for key, value in document.items() if isinstance(value, dict)}
    if not recipes:
        raise QuantizationError(f"{path} holds no recipe: write one as a [name] table (see docs/recipes.md)")
    if name is None:
        if len(recipes) > 1:
            raise QuantizationError(f"{path} holds several recipes ({', '.join(recipes)}); pick one with --recipe-name")
        name = next(iter(recipes))
    if name not in recipes:
        raise QuantizationError(f"{path} has no recipe {name!r}; it has: {', '.join(recipes)}")
    return _recipe(path, name, recipes[name])


def _recipe(path: Path, name: str, table: dict) -> Recipe:
    unknown = sorted(set(table) - set(RECIPE_KEYS))
    if unknown:
        raise QuantizationError(f"{path} [{name}]: unknown key(s) {', '.join(unknown)}; "
                                f"a recipe may set: {', '.join(RECIPE_KEYS)}")
    tensor_type = table.get("tensor_type", [])
    if isinstance(tensor_type, str):
        tensor_type = [tensor_type]
    if not isinstance(tensor_type, list) or not all(isinstance(t, str) for t in tensor_type):
        raise QuantizationError(f"{path} [{name}]: tensor_type must be a list of \"REGEX=TYPE\" strings")
    for key in ("description", "scheme", *_TYPE_KEYS):
        if key in table and not isinstance(table[key], str):
            raise QuantizationError(f"{path} [{name}]: {key} must be a string")
    if "pure" in table and not isinstance(table["pure"], bool):
        raise QuantizationError(f"{path} [{name}]: pure must be true or false")
    return Recipe(name=name, tensor_type=tuple(tensor_type),
                  **{k: table[k] for k in ("description", "scheme", *_TYPE_KEYS, "pure") if k in table})


def resolve_options(
    recipe: Recipe | None = None,
    *,
    scheme: str | None = None,
    tensor_type: Sequence[str] = (),
    token_embedding_type: str | None = None,
    ple_type: str | None = None,
    output_tensor_type: str | None = None,
    pure: bool = False,
) -> tuple[Scheme, PlanOptions]:
    """The scheme and plan options from command-line values over a recipe's."""
    base = recipe or Recipe(name="")

    def pick(cli: str | None, key: str) -> str | None:
        return cli if cli is not None else getattr(base, key)

    patterns = [parse_tensor_type_arg(arg) for arg in (*tensor_type, *base.tensor_type)]
    options = PlanOptions(
        tensor_type=patterns,
        token_embedding_type=pick(token_embedding_type, "token_embedding_type"),
        ple_type=pick(ple_type, "ple_type"),
        output_tensor_type=pick(output_tensor_type, "output_tensor_type"),
        pure=pure or base.pure,
    )
    return get_scheme(pick(scheme, "scheme") or DEFAULT_SCHEME), options
