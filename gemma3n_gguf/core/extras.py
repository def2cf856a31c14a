"""Optional extras: which packages each one brings, and the one-line refusal when they are absent.

The base install converts, quantizes and inspects; commands that run the transformers
reference (validate, check, sweep, imatrix, make-checkpoint, demo) need the ``reference`` extra.
"""

from __future__ import annotations

import importlib.util

from gemma3n_gguf.core.errors import MissingExtraError

# extra -> the import names it provides (pyproject.toml's [project.optional-dependencies]).
EXTRA_MODULES = {
    "reference": ("torch", "torchvision", "transformers", "timm", "matplotlib", "PIL"),
}


def missing_modules(extra: str) -> list[str]:
    """The extra's modules this environment cannot import (found without importing them)."""
    return [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, command: str) -> None:
    """Raise :class:`MissingExtraError` naming the install line when ``extra`` is incomplete."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(
            f"{command} needs the {extra} extra ({', '.join(missing)} not installed): "
            f'run pip install "gemma3n-gguf[{extra}]" (in a source checkout: pip install -e ".[{extra}]")'
        )
