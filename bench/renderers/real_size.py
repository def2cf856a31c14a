"""The real-size tools' sections: convert and quantize beside llama.cpp, validate's reference pass and
memory bound, and package's stages."""

from __future__ import annotations

import statistics

from renderers.cells import MEMORY, by_role, gib, label_of, median_wall, row, seconds, spread, table


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
    lines = _checkpoint_line(results)
    lines += table([row(label_of(ours), ours), row(f"{label_of(peer)} ({results['peer']} sdist)", peer)])
    lines += ["", tensors_line(results["checks"], "bf16")]
    if median_wall(ours) and median_wall(peer):
        lines[-1] += f" Ours takes {median_wall(ours) / median_wall(peer):.2f}x the reference's median wall time."
    return lines


def _checkpoint_line(results: dict) -> list[str]:
    """The converted checkpoint's size, when the run recorded it."""
    size = results["checks"].get("checkpoint")
    if size is None:
        return []
    return [f"The `{results['preset']}` checkpoint: {size['parameters'] / 1e9:.2f} B parameters, "
            f"{size['safetensors_bytes'] / 1e9:.1f} GB of safetensors.", ""]


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


def render_confined(results: dict) -> list[str]:
    """Per preset: validate, sweep and imatrix, each run inside a memory cgroup of the bound."""
    checks, lines = results["checks"], []
    for preset in (key for key, value in checks.items() if isinstance(value, dict)):
        runs = [r for r in results["runs"] if r.get("preset") == preset]
        per_role = {role: [r for r in runs if r["role"] == role] for role in ("quantize", "validate", "sweep", "imatrix")}
        by = checks[preset].get("command", results["command"])
        source = "" if by == results["command"] else f" (measured by `{by}`, repeats: {checks[preset]['repeat']})"
        lines += [f"`{preset}`, {checks['scheme']}, `--ctx {checks['ctx']} --chunks {checks['chunks']}`{source}:", ""]
        lines += table([row(label_of(measured), measured) for measured in per_role.values() if measured])
        confined = [r for role in ("validate", "sweep", "imatrix") for r in per_role[role]]
        at_limit = sum(r.get("cgroup_peak_bytes") == r.get("memory_limit_bytes") for r in confined)
        lines += ["", f"Every run but quantize in a memory cgroup of {gib(checks['bound_bytes'])} (runs the kernel "
                  f"killed for memory: {checks[preset]['oom_kills']}; runs whose cgroup reached its limit, file "
                  f"pages reclaimed there: {at_limit} of {len(confined)}). "
                  + _bound_line(per_role, checks[preset], checks["bound_bytes"]), ""]
    return lines[:-1]


def render_package(results: dict) -> list[str]:
    """Every stage of packaging (each its own process), then ``package`` end to end and its re-run."""
    roles = list(dict.fromkeys(r["role"] for r in results["runs"]))
    lines = table([row(_stage_label(role), by_role(results, role)) for role in roles])
    checks = results["checks"]
    rewrote = checks["rerun_rewrote"]
    lines += ["", f"The package holds {len(checks['files'])} files"
              f"{' (with the projector)' if checks['projector'] else ''}; the re-run on the finished directory "
              + ("rewrote none of them." if not rewrote else f"rewrote {', '.join(rewrote)}.")]
    return lines


# a package_e2b role ("quantize_Q4_K_M", "package_rerun", ...) -> the command it measured
_STAGE_COMMANDS = {"quantize": "quantize -s {}", "validate": "validate ({})", "projector": "convert --mmproj-only",
                   "modelfile": "modelfile", "package": "package", "package_rerun": "package (re-run)"}


def _stage_label(role: str) -> str:
    stage, _, scheme = role.partition("_")
    command = _STAGE_COMMANDS.get(role) or _STAGE_COMMANDS[stage].format(scheme)
    return f"`gemma3n-gguf {command}`"

