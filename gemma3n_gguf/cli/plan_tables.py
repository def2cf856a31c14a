"""Rich renderings of a quantization plan and result for the CLI (nothing here prints)."""

from __future__ import annotations

from rich.table import Table

from gemma3n_gguf.cli.console import human_bytes
from gemma3n_gguf.engine.fileplan import QuantizationPlan
from gemma3n_gguf.engine.rules import TOKEN_EMBD_NAMES, is_kv_shared_kv


def plan_table(plan: QuantizationPlan) -> Table:
    """Type per tensor group, counts, sizes and bits per weight; totals and the PLE share."""
    table = Table(title=f"{plan.scheme.name} plan for {plan.source}", title_justify="left")
    table.add_column("group", no_wrap=True)
    for header in ("tensors", "types", "parameters", "size", "bits/weight"):
        table.add_column(header, justify="left" if header == "types" else "right")
    for row in plan.groups():
        types = ", ".join(f"{name} x{count}" if count > 1 else name for name, count in row["types"].items())
        table.add_row(row["group"], str(row["tensors"]), types, f"{row['parameters']:,}",
                      human_bytes(row["bytes"]), f"{row['bits_per_weight']:.2f}")
    bpw = 8 * plan.tensor_bytes / plan.n_elements if plan.n_elements else 0.0
    table.add_row("[bold]total", str(len(plan.tensors)), "", f"{plan.n_elements:,}",
                  human_bytes(plan.tensor_bytes), f"{bpw:.2f}", end_section=True)
    table.caption = f"file {human_bytes(plan.file_bytes)} ({plan.file_bytes:,} bytes)"
    if plan.ple_share():  # a projector has no PLE table
        table.caption += f"; PLE table (per_layer_token_embd) {plan.ple_share():.1%} of the tensor bytes"
    return table


def imatrix_note(plan: QuantizationPlan) -> str | None:
    """Which quantized tensors get no importance data, and why (for the KV-shared layers)."""
    if plan.imatrix_file is None or not plan.imatrix_missing:
        return None
    shared = [n for n in plan.imatrix_missing if is_kv_shared_kv(n)]
    lookups = [n for n in plan.imatrix_missing if n in TOKEN_EMBD_NAMES]
    others = [n for n in plan.imatrix_missing if n not in shared and n not in lookups]
    parts = []
    if shared:
        parts.append(f"{len(shared)} K/V tensors of KV-shared layers (llama.cpp never computes them, "
                     "so llama-imatrix records nothing for them)")
    if lookups:
        parts.append(" and ".join(lookups) + " (row lookups, not matrix products)")
    if others:
        parts.append(f"{len(others)} other tensors ({', '.join(others[:4])}{' ...' if len(others) > 4 else ''})")
    return "quantized without imatrix data, as llama-quantize does: " + "; ".join(parts)

