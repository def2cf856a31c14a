"""The slice section: every MatFormer configuration's run and its GGUF checked against Google's table."""

from __future__ import annotations

from renderers.cells import MEMORY, by_role, row


def render_slice(results: dict) -> list[str]:
    """One row per configuration and output type: the measured run and what its GGUF says against the table."""
    headers = ["configuration", "type", "ok", "wall time", *(h for h, _ in MEMORY), "output", "layers",
               "effective params", "Google's", "difference", "checks"]
    lines = ["| " + " | ".join(headers) + " |", "|---|---|" + "---:|" * (len(headers) - 3) + "---|"]
    for role in dict.fromkeys(r["role"] for r in results["runs"]):
        runs, check = by_role(results, role), results["checks"].get(role)
        cells = row(runs[0]["config"], runs).strip("| ").split(" | ")
        cells.insert(1, runs[0]["type"])
        if check is None:
            cells += ["-", "-", "-", "-", "failed"]
        else:
            cells += [str(check["layers"]), f"{check['effective_parameters'] / 1e9:.3f} B",
                      f"{check['google_effective_b']:.2f} B" if "google_effective_b" in check else "-",
                      f"{check['effective_rel_error']:+.2%}" if "effective_rel_error" in check else "-",
                      "ok" if check["ok"] else "NOT ok: " + ", ".join(k[:-3] for k, v in check.items()
                                                                     if k.endswith("_ok") and not v)]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [key for key, check in results["checks"].items() if not check["ok"]]
    lines += ["", f"{len(results['checks'])} outputs checked (layer count and per-layer widths against the table, "
              f"effective parameters within 1% of Google's figures, peak RSS at most 2 GiB): "
              + (f"{len(failed)} failed ({', '.join(failed)})." if failed else "all pass.")]
    return lines
