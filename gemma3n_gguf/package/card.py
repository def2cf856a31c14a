"""The model card (README.md with the front matter model hubs read) and SHA256SUMS, as pure text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gemma3n_gguf import __version__
from gemma3n_gguf.core.units import human_bytes

TAGS = ("gguf", "gemma3n", "llama.cpp", "ollama", "lmstudio", "quantized")
# llama.cpp places per_layer_token_embd in host memory whatever -ngl says (it is read with GET_ROWS,
# like an input layer); --override-tensor states it explicitly.
KEEP_PLE_ON_CPU = "-ot 'per_layer_token_embd\\.weight=CPU'"


@dataclass(frozen=True)
class CardRow:
    """One quantized file and its validation numbers (exactly those of validation.json)."""

    scheme: str
    file: str
    bytes: int
    bits_per_weight: float
    ppl_ratio: float
    kld_mean: float
    same_top1: float
    ple_bytes: int

    @property
    def resident_bytes(self) -> int:
        """What an accelerator holds with every layer offloaded and the PLE table in CPU memory."""
        return self.bytes - self.ple_bytes


@dataclass(frozen=True)
class Card:
    name: str
    base_model: str
    license: str
    target: str
    rows: Sequence[CardRow]
    projector: str | None
    projector_bytes: int
    modelfiles: dict[str, str]  # scheme -> Modelfile path
    eval_text: str
    n_ctx: int
    scored_tokens: int


def number(value: float) -> str:
    """How the card writes a measured number (six significant digits; validation.json has the full value)."""
    return f"{value:.6g}"


def render_card(card: Card) -> str:
    front = ["---", f"license: {card.license}", f"base_model: {card.base_model}", "tags:"]
    front += [f"- {tag}" for tag in TAGS] + ["---", ""]
    body = [f"# {card.name} GGUF", "",
            f"GGUF files of `{card.base_model}` for llama.cpp, Ollama and LM Studio, made and validated by "
            f"gemma3n-gguf {__version__} (runtime profile `{card.target}`).", "",
            "## Files", "",
            "| file | size | bits/weight | PPL ratio | mean KLD | same top-1 | accelerator-resident |",
            "|---|---|---|---|---|---|---|"]
    for r in card.rows:
        body.append(f"| `{r.file}` | {human_bytes(r.bytes)} | {number(r.bits_per_weight)} | {number(r.ppl_ratio)} | "
                    f"{number(r.kld_mean)} | {number(r.same_top1)} | {human_bytes(r.resident_bytes)} |")
    if card.projector:
        body.append(f"| `{card.projector}` (vision + audio projector) | {human_bytes(card.projector_bytes)} | | | | | |")
    body += ["",
             f"PPL ratio, mean KLD and same top-1 compare each file with the transformers reference (fp32) on "
             f"{card.scored_tokens} tokens of `{card.eval_text}` in windows of {card.n_ctx} (llama-perplexity's "
             "protocol); `validation.json` holds every statistic and `validation.png` plots size against KLD.",
             "",
             "Accelerator-resident: the bytes left on the GPU with every layer offloaded when the per-layer "
             "embedding table (`per_layer_token_embd`) stays in CPU memory. llama.cpp keeps it there whatever "
             f"`-ngl` says; `{KEEP_PLE_ON_CPU}` states it explicitly.", "",
             *_how_to_run(card)]
    return "\n".join(front + body) + "\n"


def _how_to_run(card: Card) -> list[str]:
    first = card.rows[0].file if card.rows else "MODEL.gguf"
    lines = ["## Run it", "", "llama.cpp (text):", "", "```sh",
             f"llama-cli -m {first} -ngl 99 {KEEP_PLE_ON_CPU} -cnv", "```", ""]
    if card.projector:
        lines += ["llama.cpp with images (`llama-mtmd-cli`):", "", "```sh",
                  f"llama-mtmd-cli -m {first} --mmproj {card.projector} --image photo.jpg -p 'Describe this image.'",
                  "```", "",
                  "Audio: stock llama.cpp does not run Gemma 3n's audio tower; gemma3n-gguf's patched runtime does:",
                  "", "```sh", "RUNTIME=$(gemma3n-gguf runtime build)",
                  f"$RUNTIME/bin/llama-mtmd-cli -m {first} --mmproj {card.projector} --audio clip.wav "
                  "-p 'What is said in this clip?'", "```", ""]
    if card.modelfiles:
        scheme, modelfile = next(iter(card.modelfiles.items()))
        lines += ["Ollama (the Modelfile's TEMPLATE renders exactly what the GGUF's chat template renders):", "",
                  "```sh", f"ollama create {card.name.lower()}:{scheme.lower()} -f {modelfile}",
                  f"ollama run {card.name.lower()}:{scheme.lower()}", "```", ""]
    lines += ["LM Studio: put the model file"
              + (" and the `mmproj-*.gguf` projector side by side" if card.projector else "")
              + " in `~/.lmstudio/models/<publisher>/<model>/` (or `lms import`), then load it.", "",
              "Verify the download: `sha256sum -c SHA256SUMS`."]
    return lines


def render_sha256sums(entries: Sequence[tuple[str, str]]) -> str:
    """``sha256sum`` format: digest, two spaces, path relative to the package root."""
    return "".join(f"{digest}  {path}\n" for path, digest in entries)
