"""The ``gemma3n-gguf`` command line: a thin layer over the library's functions.

One module per command group (convert, quantize, validate, checkpoints); ``app`` wires them.
"""

from gemma3n_gguf.cli.app import app, main

__all__ = ["app", "main"]
