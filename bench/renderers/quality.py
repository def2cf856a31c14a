"""The quality sections: the tiny models' parity, sweep and exact multimodal tokens against transformers,
audio encoding beside transformers, and our imatrix beside llama-imatrix."""

from __future__ import annotations

from renderers.cells import by_role, label_of, row, seconds, spread, table


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
            *_audio_prompt(checks.get("audio")),
            *table([row(label_of(by_role(results, role)), by_role(results, role)) for role in ("exact", "plain")]),
            *_exact_mm_cost(checks.get("f16_plans", {}))]


def _audio_prompt(audio: dict | None) -> list[str]:
    """The audio prompt in the patched runtime, with exact tokens, against transformers."""
    if audio is None:
        return []
    after = audio["after_audio"]
    return [f"An audio prompt ({audio['seconds']:g} s clip) with the exact-token text GGUF and the same projector, in "
            f"the patched runtime: {audio['n_tokens']} soft tokens (transformers: {audio['n_reference_tokens']}; "
            f"{audio['n_encoder_tokens']} from the audio tower, the rest padding), each within cosine "
            f"{audio['min_cosine']:.7f} of transformers'; at the {after['n_positions']} text positions after the clip, "
            f"top-1 {100 * after['top1_agreement']:.1f}%, mean KLD {after['mean_kld']:.3g}.", ""]


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
