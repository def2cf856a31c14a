"""Google's 16 official MatFormer slicing configurations of Gemma 3n E4B, as data.

Source: the Hugging Face dataset ``google/gemma3n-slicing-configs`` (also in the MatFormer Lab
notebook). Every configuration slices the 35-layer E4B, whose FFNs are 16384 wide ("full", 2048 x 8);
the others are 8192 ("half", 2048 x 4). Width positions count kept layers (after skipping).
On a checkpoint other than E4B the names apply by ratio: full = the checkpoint's width, half = half of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemma3n_gguf.core.errors import ConfigError

E4B_LAYERS = 35
E4B_FULL_WIDTH = 16384


@dataclass(frozen=True)
class OfficialConfig:
    slug: str  # what --config takes (Google's name works too)
    name: str  # Google's name
    skipped: tuple[int, ...]  # original layer indices
    full_layers: tuple[int, ...]  # kept-layer positions at full width; the rest are half
    effective_params_b: float  # Google's figure, billions
    mmlu: float  # MMLU PT accuracy, percent

    @property
    def num_layers(self) -> int:
        return E4B_LAYERS - len(self.skipped)

    def ratios(self) -> tuple[float, ...]:
        """Each kept layer's width as a fraction of the full width (1 or 1/2)."""
        full = set(self.full_layers)
        return tuple(1.0 if i in full else 0.5 for i in range(self.num_layers))

    def widths(self, full_width: int) -> tuple[int, ...]:
        return tuple(int(full_width * r) for r in self.ratios())


def _spans(*spans: int | tuple[int, int]) -> tuple[int, ...]:
    """Layer positions from single indices and inclusive (first, last) ranges."""
    out: list[int] = []
    for span in spans:
        first, last = span if isinstance(span, tuple) else (span, span)
        out.extend(range(first, last + 1))
    return tuple(out)


_ALL = (0, E4B_LAYERS - 1)
_E2B_SKIP = _spans((20, 24))

OFFICIAL_CONFIGS: tuple[OfficialConfig, ...] = (
    OfficialConfig("main", "Main model", (), _spans(_ALL), 3.98, 62.3),
    OfficialConfig("e2b", "Config for official E2B Model", _E2B_SKIP, (), 1.91, 50.9),
    OfficialConfig("e1.96b-layer", "Config for E1.96B (layer-level)", _E2B_SKIP, _spans(4), 1.96, 53.4),
    OfficialConfig("e2.54b-layer", "Config for E2.54B (layer-level)", (), _spans(4, (20, 24)), 2.54, 55.4),
    OfficialConfig("e2.69b-layer", "Config for E2.69B (layer-level)", (), _spans(4, 9, 14, (19, 24)), 2.69, 57.7),
    OfficialConfig("e2.98b-layer", "Config for E2.98B (layer-level)", (), _spans((15, 24), (30, 34)), 2.98, 59.5),
    OfficialConfig("e3.18b-layer", "Config for E3.18B (layer-level)", (), _spans(4, (9, 24), 29, 34), 3.18, 61.8),
    OfficialConfig("e3.39b-layer", "Config for E3.39B (layer-level)", (), _spans(4, (9, 29), 34), 3.39, 63.0),
    OfficialConfig("e3.59b-layer", "Config for E3.59B (layer-level)", (), _spans((4, 29), 34), 3.59, 63.4),
    OfficialConfig("e3.79b-layer", "Config for E3.79B (layer-level)", (), _spans((4, 34)), 3.79, 63.4),
    OfficialConfig("e2.49b-block", "Config for E2.49B (block-level)", (), _spans((20, 24)), 2.49, 54.5),
    OfficialConfig("e2.73b-block", "Config for E2.73B (block-level)", (), _spans((15, 24)), 2.73, 57.1),
    OfficialConfig("e2.98b-block", "Config for E2.98B (block-level)", (), _spans((10, 24)), 2.98, 59.5),
    OfficialConfig("e3.24b-block", "Config for E3.24B (block-level)", (), _spans((10, 29)), 3.24, 60.7),
    OfficialConfig("e3.49b-block", "Config for E3.49B (block-level)", (), _spans((5, 29)), 3.49, 61.4),
    # Google names it E3.79B but lists 3.74 B effective parameters
    OfficialConfig("e3.79b-block", "Config for E3.79B (block-level)", (), _spans((5, 34)), 3.74, 62.0),
)

_BY_NAME = {key.lower(): c for c in OFFICIAL_CONFIGS for key in (c.slug, c.name)}


def official_config(name: str) -> OfficialConfig:
    """The configuration called ``name`` (its slug or Google's name, any case)."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        slugs = ", ".join(c.slug for c in OFFICIAL_CONFIGS)
        raise ConfigError(f"unknown slicing configuration {name!r}; choose one of: {slugs} "
                          "(gemma3n-gguf slice --list shows them)") from None
