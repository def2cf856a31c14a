"""Render the README's benchmark sections from the results files under bench/results/: per tool,
the median of the repeats with their min-max, and the machine and command that produced them.

    python bench/report.py            # rewrite README.md between <!-- bench:NAME --> markers
    python bench/report.py --check    # exit 1 if README.md disagrees with the results files

Only ``NAME.json`` (the real-size preset) is rendered; smoke runs on tiny presets are written as
``NAME.PRESET.json`` and never reach the README.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
README = ROOT / "README.md"

# How to produce each results file (printed where none is recorded yet, and in bench/README.md).
COMMANDS = {
    "convert_e2b": "python bench/convert_e2b.py --repeat 3 --compare",
    "quantize_e2b": "python bench/quantize_e2b.py --repeat 3",
    "validate_e2b": "python bench/validate_e2b.py --repeat 3",
    "audio_encode": "python bench/audio_encode.py --repeat 3",
    "package_e2b": "python bench/package_e2b.py --repeat 1",
    "slice_e4b": "python bench/slice_e4b.py --repeat 1",
    "parity_tiny": "python bench/parity_tiny.py --repeat 1",
    "sweep_tiny": "python bench/sweep_tiny.py --repeat 1",
    "exact_mm_tiny": "python bench/exact_mm_tiny.py --repeat 1",
    "imatrix_peer": "python bench/imatrix_peer.py --repeat 1",
}
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


def tensors_line(checks: dict, what: str) -> str:
    t = checks.get("tensors")
    if not t:
        return f"The two {what} files were not compared in this run."
    if not t["different"] and not t["only_ours"] and not t["only_reference"]:
        same = t.get("same_values_other_type", 0)
        extra = f"; {same} hold the same values in another float type" if same else ""
        return f"All {t['tensors']} tensors of the two {what} files are identical (names, types, shapes, bytes){extra}."
    return (f"The two {what} files differ: {len(t['different'])} tensors, {len(t['only_ours'])} only in ours, "
            f"{len(t['only_reference'])} only in the reference.")


def render_convert(results: dict) -> list[str]:
    ours, peer = by_role(results, "ours"), by_role(results, "peer_convert")
    lines = table([row(label_of(ours), ours), row(f"{label_of(peer)} ({results['peer']} sdist)", peer)])
    lines += ["", tensors_line(results["checks"], "bf16")]
    if median_wall(ours) and median_wall(peer):
        lines[-1] += f" Ours takes {median_wall(ours) / median_wall(peer):.2f}x the reference's median wall time."
    return lines


def render_quantize(results: dict) -> list[str]:
    ours, floor = by_role(results, "ours"), by_role(results, "kernel_floor")
    convert, quantize = by_role(results, "peer_convert"), by_role(results, "peer_quantize")
    steps = [_two_steps(c, q) for c, q in zip(convert, quantize)]
    floor_ok = [r for r in floor if r["exit"] == 0 and r.get("kernel_s") is not None]
    lines = table([
        row(label_of(ours), ours), row(label_of(convert), convert), row(label_of(quantize), quantize),
        row("llama.cpp two steps, total", steps),
        f"| kernel floor (ggml's kernels alone) | {len(floor_ok)}/{len(floor)} | "
        f"{spread([r['kernel_s'] for r in floor_ok], seconds)} | | | | |",
    ])
    lines += ["", tensors_line(results["checks"], results["checks"].get("scheme", "quantized"))]
    one_pass, two = median_wall(ours), median_wall(steps)
    if one_pass and two and floor_ok:
        kernels = statistics.median(r["kernel_s"] for r in floor_ok)
        lines[-1] += (f" One pass takes {one_pass / kernels:.2f}x the kernel floor and is {two / one_pass:.2f}x "
                      "faster than the two steps (medians).")
    return lines


def _two_steps(convert: dict, quantize: dict) -> dict:
    """Both of llama.cpp's steps of one repeat as one run: times add, peaks are the larger one."""
    merged = {"exit": convert["exit"] or quantize["exit"], "wall_s": convert["wall_s"] + quantize["wall_s"],
              "output_bytes": quantize["output_bytes"]}
    merged.update({field: max(convert[field], quantize[field]) for _, field in MEMORY})
    return merged


VALIDATE_ROLES = ("quantize", "peer_f16_convert", "validate", "peer_f16_base", "sweep", "imatrix")


def render_validate(results: dict) -> list[str]:
    """Per preset: every run, the reference pass beside llama.cpp's F16 base pass, and the memory bound."""
    checks, lines = results["checks"], []
    for preset in (key for key, value in checks.items() if isinstance(value, dict)):
        runs = [r for r in results["runs"] if r.get("preset") == preset]
        per_role = {role: [r for r in runs if r["role"] == role] for role in VALIDATE_ROLES}
        by = checks[preset].get("command", results["command"])
        source = "" if by == results["command"] else f" (measured by `{by}`, repeats: {checks[preset]['repeat']})"
        lines += [f"`{preset}`, {checks['scheme']}, `--ctx {checks['ctx']} --chunks {checks['chunks']}`{source}:", ""]
        lines += table([row(label_of(measured), measured) for measured in per_role.values() if measured])
        lines += ["", _reference_beside_llama(per_role), "", _bound_line(per_role, checks[preset], checks["bound_bytes"]),
                  ""]
    return lines[:-1]


def _reference_beside_llama(per_role: dict[str, list[dict]]) -> str:
    passes = [r["report"]["reference"] for r in per_role["validate"] if "report" in r]
    bases = [r["report"] for r in per_role["peer_f16_base"] if "report" in r]
    if not passes or not bases:
        return "The reference pass and llama.cpp's F16 pass were not both measured."
    reference = statistics.median(p["seconds"] for p in passes)
    load, logits = (statistics.median(b[key] for b in bases) for key in ("load_s", "pass_s"))
    return (f"Reference pass ({passes[0]['mode']}, fp32 transformers, {bases[0]['windows']} windows): "
            f"{seconds(reference)}, peak RSS {gib(max(p['peak_rss_bytes'] for p in passes))}; llama.cpp's F16 "
            f"base-logits pass on the same windows: {seconds(load + logits)} ({seconds(load)} load, "
            f"{seconds(logits)} logits); the reference takes {reference / (load + logits):.2f}x its time (medians).")


def _bound_line(per_role: dict[str, list[dict]], checks: dict, bound: int) -> str:
    """Each bounded role's highest peak RSS against the bound, and the sweep's count of reference passes."""
    verdicts = []
    for role in ("validate", "sweep", "imatrix"):
        if failed := [r for r in per_role[role] if r["exit"] != 0]:
            verdicts.append(f"{role} did not finish (exit {failed[0]['exit']})")
        elif measured := per_role[role]:
            within = "within" if checks["within_bound"].get(role) else "NOT within"
            verdicts.append(f"{role} {gib(max(r['peak_rss_bytes'] for r in measured))} ({within})")
    line = f"Peak RSS against the {gib(bound)} bound: " + ", ".join(verdicts or ["nothing measured"])
    if checks["sweep_reference_runs"]:
        line += f"; the sweep ran {checks['sweep_reference_runs'][0]} reference pass for its schemes"
    return line + "."


def render_package(results: dict) -> list[str]:
    """Every stage of packaging (each its own process), then ``package`` end to end and its re-run."""
    roles = list(dict.fromkeys(r["role"] for r in results["runs"]))
    lines = table([row(label_of(by_role(results, role)), by_role(results, role)) for role in roles])
    checks = results["checks"]
    rewrote = checks["rerun_rewrote"]
    lines += ["", f"The package holds {len(checks['files'])} files"
              f"{' (with the projector)' if checks['projector'] else ''}; the re-run on the finished directory "
              + ("rewrote none of them." if not rewrote else f"rewrote {', '.join(rewrote)}.")]
    return lines


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


def render_audio(results: dict) -> list[str]:
    """Both sides' runs (load + encode), their encode time alone, and how close their tokens are."""
    runtime, reference = by_role(results, "runtime"), by_role(results, "transformers")
    lines = table([row(label_of(runtime), runtime), row(label_of(reference), reference)])
    checks = results["checks"]
    encode = {side: spread([r["encode_s"] for r in runs if r["exit"] == 0 and "encode_s" in r], seconds)
              for side, runs in (("runtime", runtime), ("transformers", reference))}
    return lines + ["", f"{checks['seconds']:g} s of audio, {checks['threads']} threads each. Encoding alone: "
                        f"llama.cpp {encode['runtime']}, transformers {encode['transformers']}. The runtime feeds "
                        f"{checks['runtime_tokens']} soft tokens, transformers' tower gives {checks['transformers_tokens']}; "
                        f"per-token cosine between them: min {checks['min_cosine']:.6f}, mean {checks['mean_cosine']:.6f}."]


def render_parity(results: dict) -> list[str]:
    """Per output type: the logit parity of the converted file with transformers, against its bound."""
    checks = results["checks"]
    gap = next(iter(checks["parity"].values()))["stats"]["gap"]
    lines = [f"`{results['preset']}` converted to each type and run by llama.cpp, against transformers (fp32), on BOS + "
             f"{checks['tokens'] - 1} random text ids (seed {checks['seed']}): |Δlogit| as a fraction of the reference "
             f"logits' standard deviation, top-1 where the reference's top-2 gap exceeds {gap:g}; each bound "
             "(validate/metrics/bounds.py) in parentheses.", "",
             "| type | max abs Δlogit / std | mean abs Δlogit / std | mean KLD | top-1 (gap) | top-1 (all) | within bounds |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for outtype, parity in checks["parity"].items():
        s, b = parity["stats"], parity["bounds"]
        lines.append(f"| {outtype} | {s['max_abs_dlogit_rel']:.4f} (≤ {b['max_rel']:g}) | {s['mean_max_abs_dlogit_rel']:.4f} "
                     f"(≤ {b['mean_rel']:g}) | {s['mean_kld']:.2g} (≤ {b['mean_kld']:g}) | {s['confident_top1_agreement']:.3f} "
                     f"(≥ {b['confident_top1']:g}) | {s['top1_agreement']:.3f} | "
                     + ("yes" if not parity["violations"] else "NO: " + "; ".join(parity["violations"])) + " |")
    roles = dict.fromkeys(r["role"] for r in results["runs"])
    return lines + ["", "The conversions:", "", *table([row(label_of(by_role(results, role)), by_role(results, role))
                                                        for role in roles])]


SWEEP_HEADER = ("| scheme | size | bits/weight | PPL ratio | mean KLD | 99% KLD | same top-1 |",
                "|---|---:|---:|---:|---:|---:|---:|")


def render_sweep(results: dict) -> list[str]:
    """The sweep's table as `gemma3n-gguf sweep` prints it, and the f32 conversion on the same windows."""
    checks = results["checks"]
    sweep, f32 = checks["sweep"], checks["sweep_f32"]["rows"][0]
    lines = [f"`{checks['checkpoint']}` (random weights): {sweep['scored_tokens']} scored tokens in {sweep['windows']} "
             f"windows of {sweep['n_ctx']} tokens of the built-in evaluation text, {sweep['reference_runs']} "
             "reference pass for all schemes.", "", *SWEEP_HEADER]
    for r in sweep["rows"]:
        ppl, kld, top1 = r["ppl_ratio"], r["kld_mean"], r["same_top1"]
        lines.append(f"| {r['scheme']} | {r['file_bytes'] / 2**20:.2f} MiB | {r['bits_per_weight']:.2f} "
                     f"| {ppl['value']:.4f} ± {ppl['uncertainty']:.4f} | {kld['value']:.5f} ± {kld['uncertainty']:.5f} "
                     f"| {r['kld_p99']:.4f} | {100 * top1['value']:.2f} ± {100 * top1['uncertainty']:.2f} % |")
    kld = f32["kld_mean"]
    lines += ["", f"An f32 conversion of the same checkpoint (`sweep --schemes F32`, same windows) measures a mean KLD "
                  f"of {kld['value']:.2g} ± {kld['uncertainty']:.1g} (99% KLD {f32['kld_p99']:.2g}), same top-1 "
                  f"{100 * f32['same_top1']['value']:.2f} %.", "", "The runs:", "",
              *table([row(label_of(by_role(results, role)), by_role(results, role)) for role in ("sweep", "sweep_f32")])]
    return lines


def render_exact_mm(results: dict) -> list[str]:
    """The logits after an image, with and without exact multimodal tokens, against transformers."""
    checks = results["checks"]
    exact, plain = checks["parity"]["exact"], checks["parity"]["plain"]

    def after(p: dict) -> str:
        s = p["after_image"]
        return f"top-1 {100 * s['top1_agreement']:.1f}%, mean KLD {s['mean_kld']:.3g}"

    before = plain["before_image"], exact["before_image"]
    return [f"An image prompt on `{results['preset']}` ({exact['n_image_tokens']} image tokens, {checks['text_type']} "
            f"text GGUFs, the projector `{checks['projector']}`) against transformers (fp32), at the "
            f"{exact['after_image']['n_positions']} text positions after the image: without `--exact-mm-tokens` "
            f"{after(plain)} (max |Δlogit| {plain['first_after_image_max_abs_dlogit']:.3g} on the `<end_of_image>` row); "
            f"with it, {after(exact)}. Before the image, without and with: top-1 "
            f"{100 * before[0]['top1_agreement']:.1f}% and {100 * before[1]['top1_agreement']:.1f}%, mean KLD "
            f"{before[0]['mean_kld']:.2g} and {before[1]['mean_kld']:.2g}.", "",
            *table([row(label_of(by_role(results, role)), by_role(results, role)) for role in ("exact", "plain")]),
            *_exact_mm_cost(checks.get("f16_plans", {}))]


def _exact_mm_cost(plans: dict[str, dict]) -> list[str]:
    """The untied output.weight the option adds to each real-size f16 plan."""
    costs = [f"`{preset}` +{p['exact']['output_parameters'] / 1e6:.0f} M parameters, "
             f"+{(p['exact']['file_bytes'] - p['plain']['file_bytes']) / 1e9:.2f} GB "
             f"({p['exact']['file_bytes'] / p['plain']['file_bytes'] - 1:.0%} of the file without it)"
             for preset, p in plans.items()]
    return ["", "What the untied `output.weight` costs in an f16 file (the converter's plan): " + "; ".join(costs) + "."] \
        if costs else []


def render_imatrix_peer(results: dict) -> list[str]:
    """Both tools' runs, then per entry kind the largest relative difference over the layers."""
    compared, checks = results["checks"]["compared"], results["checks"]
    roles = [role for role in compared if by_role(results, role)]
    lines = table([row(label_of(by_role(results, role)), by_role(results, role)) for role in ("ours", *roles)])
    lines += ["", f"`--ctx {checks['ctx']} --chunks {checks['chunks']}`, the packaged evaluation text. Largest "
              "relative difference of the normalized values, max over columns of |ours - theirs| / the "
              "entry's largest value, and over the layers:", ""]
    lines += ["| entry | " + " | ".join(label_of(by_role(results, role)) for role in roles) + " |",
              "|---|" + "---:|" * len(roles)]
    for kind in sorted(compared[roles[0]]["by_kind"]):
        lines.append(f"| `{kind}` | " + " | ".join(f"{compared[role]['by_kind'].get(kind, float('nan')):.1e}"
                                                  for role in roles) + " |")
    lines.append("| all | " + " | ".join(f"{compared[role]['max_rel']:.1e}" for role in roles) + " |")
    first = compared[roles[0]]
    lines += ["", f"{len(first['entries'])} entries in both files, counts {'equal' if first['counts_equal'] else 'NOT equal'}"
              f" in every one; only ours: {len(first['only_ours'])}, only llama-imatrix: {len(first['only_peer'])}."]
    return lines


RENDERERS: dict[str, Callable[[dict], list[str]]] = {"convert_e2b": render_convert, "quantize_e2b": render_quantize,
                                                     "validate_e2b": render_validate, "package_e2b": render_package,
                                                     "slice_e4b": render_slice, "audio_encode": render_audio,
                                                     "parity_tiny": render_parity, "sweep_tiny": render_sweep,
                                                     "exact_mm_tiny": render_exact_mm,
                                                     "imatrix_peer": render_imatrix_peer}


def render(bench: str, results_dir: Path = RESULTS_DIR) -> str:
    path = results_dir / f"{bench}.json"
    if not path.is_file():
        return (f"No results recorded yet: run `{COMMANDS[bench]}` on a quiet machine, "
                "then `python bench/report.py`.")
    return render_results(json.loads(path.read_text()))


def render_results(results: dict) -> str:
    """One results file as the README shows it."""
    return "\n".join([machine_line(results), "", *RENDERERS[results["bench"]](results)])


def update_readme(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """``text`` with every ``<!-- bench:NAME -->`` section re-rendered from its results file."""
    def section(match: re.Match) -> str:
        return f"{match.group(1)}\n{render(match.group(2), results_dir)}\n{match.group(3)}"

    return re.sub(r"(<!-- bench:(\w+) -->)\n.*?\n?(<!-- /bench:\2 -->)", section, text, flags=re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the README is stale")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    current = args.readme.read_text()
    rendered = update_readme(current, args.results_dir)
    if rendered == current:
        print(f"{args.readme}: benchmark sections up to date")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), rendered.splitlines(True),
                                                   str(args.readme), "rendered"))
        return 1
    from gemma3n_gguf.core.atomic import write_text_atomically

    write_text_atomically(args.readme, rendered)
    print(f"{args.readme}: benchmark sections rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
