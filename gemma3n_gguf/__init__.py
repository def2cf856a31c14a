"""gemma3n-gguf: convert, quantize and validate Gemma 3n checkpoints as GGUF files.

The command line is a thin layer over these functions::

    from gemma3n_gguf import convert, make_checkpoint, summarize
    make_checkpoint("tiny", "tiny-text")
    result = convert("tiny", "tiny-F16.gguf", outtype="f16")
    print(summarize(result.path).total.bits_per_weight)
"""

from gemma3n_gguf.core.version import __version__

from gemma3n_gguf.convert.text import ConversionResult, convert  # noqa: E402
from gemma3n_gguf.inspection import summarize  # noqa: E402

__all__ = ["ConversionResult", "__version__", "convert", "make_checkpoint", "summarize"]


def __getattr__(name: str):
    # make_checkpoint needs the reference extra (torch, transformers): loaded on first use only,
    # so `import gemma3n_gguf` works in the base install.
    if name == "make_checkpoint":
        from gemma3n_gguf.fixtures.factory import make_checkpoint

        return make_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
