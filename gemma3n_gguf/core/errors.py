"""Typed errors raised by the library.

Every error carries a message a user can act on. ``cli/app.py`` prints it as one red line
and exits 1; library callers catch :class:`Gemma3nGGUFError` or a subclass.
"""

from __future__ import annotations


class Gemma3nGGUFError(Exception):
    """Base class of every error this package raises on purpose."""


class CheckpointError(Gemma3nGGUFError):
    """The checkpoint directory is missing files or holds unreadable ones."""


class ConfigError(Gemma3nGGUFError):
    """The model config is not Gemma 3n, or asks for something llama.cpp cannot run."""


class TensorMappingError(Gemma3nGGUFError):
    """Checkpoint tensors and GGUF tensors do not correspond one to one."""


class ConversionError(Gemma3nGGUFError):
    """Writing the GGUF failed (bad weights, unwritable destination, ...)."""


class QuantizationError(Gemma3nGGUFError):
    """A quantization scheme, recipe or imatrix cannot be applied."""


class GGUFFileError(Gemma3nGGUFError):
    """A GGUF file is unreadable or not what the command expects."""


class ValidationError(Gemma3nGGUFError):
    """Validation could not run (mismatched reference, text too short, ...)."""


class RuntimeUnavailableError(Gemma3nGGUFError):
    """llama-cpp-python (or another runtime piece) is missing or too old."""


class MissingExtraError(RuntimeUnavailableError):
    """The command needs an optional extra (e.g. ``reference``: torch, transformers) that is not installed."""


class BaselineError(Gemma3nGGUFError):
    """A CI baseline file is missing, malformed or does not fit the run (a usage error: exit 2)."""


class PackageError(Gemma3nGGUFError):
    """A Modelfile, runtime profile or package option cannot be applied (bad --param, foreign chat template, ...)."""
