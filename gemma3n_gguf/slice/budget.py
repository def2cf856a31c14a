"""``--budget SIZE``: the best official configuration whose file (or resident part) fits.

"Best" is the highest MMLU Google reports; between equal scores, the smaller file. The resident
part is everything but the PLE table, which a runtime may keep off the accelerator (memory-mapped).
"""

from __future__ import annotations

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import ConfigError
from gemma3n_gguf.core.units import human_bytes
from gemma3n_gguf.model.config import TextConfig
from gemma3n_gguf.slice.api import SliceResult, WriteOptions, plan_slice
from gemma3n_gguf.slice.checkpoint import SlicedCheckpoint
from gemma3n_gguf.slice.configs import OFFICIAL_CONFIGS, OfficialConfig
from gemma3n_gguf.slice.spec import official_request

BUDGET_OF = ("file", "resident")


def sizes_of_official(original: Checkpoint, gguf: bool, options: WriteOptions) -> list[tuple[OfficialConfig, SliceResult]]:
    """Every official configuration's planned size on this checkpoint (headers only)."""
    cfg = TextConfig.from_hf(original.config)
    return [(c, plan_slice(SlicedCheckpoint(original, official_request(c, cfg)), gguf, options))
            for c in OFFICIAL_CONFIGS]


def pick_for_budget(original: Checkpoint, budget: int, of: str, gguf: bool, options: WriteOptions) -> OfficialConfig:
    if of not in BUDGET_OF:
        raise ConfigError(f"--budget-of must be one of {', '.join(BUDGET_OF)}, not {of!r}")
    sized = [(c, r.file_bytes if of == "file" else r.resident_bytes)
             for c, r in sizes_of_official(original, gguf, options)]
    fitting = [(c, size) for c, size in sized if size <= budget]
    if not fitting:
        smallest = min(size for _, size in sized)
        raise ConfigError(f"no official configuration fits {human_bytes(budget)} ({of}); the smallest needs "
                          f"{human_bytes(smallest)}: raise --budget or pick a smaller --scheme")
    return max(fitting, key=lambda pair: (pair[0].mmlu, -pair[1]))[0]
