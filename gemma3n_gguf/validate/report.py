"""What one validation run measured: a plain, JSON-ready record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemma3n_gguf.validate.multimodal.media import MediaParity
from gemma3n_gguf.validate.metrics.kld import KLDStats
from gemma3n_gguf.core.stats import jsonable
from gemma3n_gguf.validate.tokens import TokenizerAgreement


@dataclass(frozen=True)
class ConfidentTop1:
    """Top-1 agreement where the reference's top-2 log-prob gap exceeds ``gap`` nats.

    Random tiny models have many near-ties whose order any rounding flips
    (parity-and-fixtures.md §2); this is the agreement that must be ~1 for a faithful file.
    """

    agreement: float  # NaN when no position is confident
    n_confident: int
    gap: float


@dataclass(frozen=True)
class ReferencePass:
    directory: str
    fingerprint: str
    cache_file: str
    cached: bool
    """True when the reference rows were read from the cache (transformers did not run)."""
    seconds: float
    mode: str | None = None
    """How the reference ran: "memory" (the whole model) or "streamed" (layer by layer); None from the cache."""
    peak_rss_bytes: int | None = None
    """This process's peak resident memory during the reference pass (None from the cache)."""


@dataclass(frozen=True)
class ValidationReport:
    model: str
    model_bytes: int
    bits_per_weight: float
    reference: ReferencePass
    text_name: str
    text_sha256: str
    n_text_tokens: int
    tokenizer: TokenizerAgreement
    n_ctx: int
    n_windows: int
    n_vocab_compared: int
    vocab_aligned: bool
    """True when the GGUF's and the reference's vocabularies differ and were cut to the shared ids."""
    kld: KLDStats
    confident_top1: ConfidentTop1
    candidate_seconds: float
    media: tuple[MediaParity, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    weight_repack: bool = True
    """llama.cpp's CPU weight repacking in the candidate pass (False: as with --no-repack)."""

    def embedding_cosine(self, kind: str) -> float | None:
        """The lowest embedding cosine over the ``kind`` ("image"/"audio") inputs, if any."""
        values = [m.embedding_cosine for m in self.media if m.kind == kind]
        return min(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "model": {"path": self.model, "bytes": self.model_bytes, "bits_per_weight": self.bits_per_weight},
            "reference": self.reference.__dict__,
            "text": {"name": self.text_name, "sha256": self.text_sha256, "tokens": self.n_text_tokens},
            "tokenizer": self.tokenizer.to_dict(),
            "protocol": {
                "n_ctx": self.n_ctx,
                "windows": self.n_windows,
                "scored_tokens": self.kld.n_tokens,
                "vocab_compared": self.n_vocab_compared,
                "vocab_aligned": self.vocab_aligned,
                "weight_repack": self.weight_repack,
            },
            "kld": self.kld.to_dict(),
            "confident_top1": self.confident_top1.__dict__,
            "candidate_seconds": self.candidate_seconds,
            "media": [m.to_dict() for m in self.media],
            "warnings": list(self.warnings),
        })
