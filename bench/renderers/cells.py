"""What every benchmark section is built from: the runs table (median (min-max) of each measure), its
cell formats, run selection by role, and the line naming the machine and command that measured them."""

from __future__ import annotations

import statistics
from typing import Callable

# The memory columns every table has: (header, run field).
MEMORY = (("peak RSS", "peak_rss_bytes"), ("anonymous", "peak_rss_anon_bytes"), ("file-backed", "peak_rss_file_bytes"))


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """Median, then (min-max) when the repeats differ."""
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return fmt(mid) if low == high else f"{fmt(mid)} ({fmt(low)}-{fmt(high)})"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def size_unit(values: list[float]) -> Callable[[float], str]:
    """One unit per cell: GiB from 1 GiB up, MiB below."""
    return gib if values and statistics.median(values) >= 2**30 else mib


def row(label: str, runs: list[dict]) -> str:
    """One table row: the successful runs' median (min-max) of every measure."""
    ok = [r for r in runs if r["exit"] == 0]
    cells = [label, f"{len(ok)}/{len(runs)}", spread([r["wall_s"] for r in ok], seconds)]
    for _, field in MEMORY:
        values = [r[field] for r in ok]
        cells.append(spread(values, size_unit(values)))
    outputs = [r["output_bytes"] for r in ok if r["output_bytes"] is not None]
    cells.append(spread(outputs, size_unit(outputs)))
    return "| " + " | ".join(cells) + " |"


def table(rows: list[str]) -> list[str]:
    headers = ["run", "ok", "wall time", *(h for h, _ in MEMORY), "output"]
    return ["| " + " | ".join(headers) + " |", "|---|---:|" + "---:|" * (len(headers) - 2), *rows]


def by_role(results: dict, role: str) -> list[dict]:
    return [r for r in results["runs"] if r["role"] == role]


def label_of(runs: list[dict]) -> str:
    return f"`{runs[0]['tool']}`" if runs else "-"


def median_wall(runs: list[dict]) -> float | None:
    ok = [r["wall_s"] for r in runs if r["exit"] == 0]
    return statistics.median(ok) if ok else None


def machine_line(results: dict) -> str:
    m, build = results["machine"], results["machine"]["llama_cpp"]
    return (f"Recorded {results['date']} with `{results['command']}` (repeats: {results['repeat']}, "
            f"preset `{results['preset']}`) on {m['cpu_model']}, {m['usable_cores']} cores, "
            f"{m['memory_bytes'] / 2**30:.1f} GiB, {m['os']}, Python {m['python']}; llama-cpp-python "
            f"{build['version']} ({build['ggml_library']}, {build['compiler']}, {build['system_info']}). "
            "Cells: median of the repeats (min-max); peak RSS is the kernel's high-water mark, anonymous "
            "and file-backed are sampled peaks (bench/measure.py).")
