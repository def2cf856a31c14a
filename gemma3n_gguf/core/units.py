"""Human-readable sizes, shared by reports, tables and the demo."""

from __future__ import annotations

import re

from gemma3n_gguf.core.errors import ConfigError


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.50 KiB"``; whole bytes below 1 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_bytes(text: str) -> int:
    """``"3GB"`` -> 3_000_000_000, ``"2.5GiB"`` -> 2_684_354_560; a bare number is bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match[2].lower() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigError(f"cannot read the size {text!r}: give a number with a unit such as 3GB, 2.5GiB or 800MB")
    return int(float(match[1]) * _UNITS[unit])
