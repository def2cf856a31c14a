"""Arguments and options shared by several commands (one definition, one help text)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CheckpointArg = Annotated[Path, typer.Argument(help="Hugging Face checkpoint directory (config.json, safetensors, tokenizer.model).")]
GGUFArg = Annotated[Path, typer.Argument(help="A GGUF file.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]

EXACT_MM_HELP = (
    "Make llama.cpp embed the multimodal hard tokens (<end_of_image>, which mtmd puts after every image, "
    "and the rest of the vision/audio ids) as transformers does: bake them into token_embd, fill the "
    "padded PLE rows with row 0 and write an untied output.weight. Costs vocab x hidden more "
    "(E2B/E4B: +537 M parameters, +1.07 GB at f16, +0.57 GB at q8_0). Without it, logits after an "
    "image drift (measured on tiny-mm: mean KLD 1.3, top-1 95%).")
ExactMmTokensOpt = Annotated[bool | None, typer.Option(
    "--exact-mm-tokens/--no-exact-mm-tokens", help=EXACT_MM_HELP + " Default: on with --mmproj, else off.")]
QuantizeExactMmTokensOpt = Annotated[bool, typer.Option(
    "--exact-mm-tokens/--no-exact-mm-tokens", help=EXACT_MM_HELP + " Default: off.")]
ReferenceModeOpt = Annotated[str, typer.Option(
    "--reference-mode", help="How the transformers reference runs: memory (the whole fp32 model), streamed (one "
                             "decoder layer at a time, for models larger than RAM) or auto (memory when it fits "
                             "with room to spare).")]

# The per-tensor type options of quantize and slice --scheme.
RepackOpt = Annotated[bool, typer.Option(
    "--repack/--no-repack", help="llama.cpp's CPU weight repacking in the text candidate pass (its default). "
    "--no-repack computes from the mapped file without a repacked copy of the repackable matrices (Q4_0, Q4_K, "
    "IQ4_NL, ... by CPU), as llama.cpp's --no-repack: less memory, slightly different results for those types.")]
TypeOpt = Annotated[str | None, typer.Option(help="A ggml type: Q8_0, Q6_K, Q4_K, F16, ...")]
TensorTypeOpt = Annotated[list[str] | None, typer.Option("--tensor-type", help="REGEX=TYPE for matching tensors; repeatable, first match wins.")]
PleTypeOpt = Annotated[str | None, typer.Option(help="Type of the PLE table (per_layer_token_embd).")]
PureOpt = Annotated[bool, typer.Option(help="No per-tensor mixing: every quantizable tensor gets the scheme's type.")]
RecipeOpt = Annotated[Path | None, typer.Option(help="TOML file of named recipes (docs/recipes.md).")]
RecipeNameOpt = Annotated[str | None, typer.Option(help="The recipe to use from --recipe.")]
