"""Slice the e4b-shape checkpoint to every official MatFormer configuration (GGUF, one pass each;
one of them also quantized to Q4_K_M in the same pass), REPEAT times, and record every run in
bench/results/slice_e4b.json:

- wall time and peak RSS of each ``gemma3n-gguf slice`` (a child process, measured by measure.py);
- checks read back from each GGUF: layer count and per-layer FFN widths equal the table's (widths
  by ratio: full = the checkpoint's, half = half of it), effective parameters within 1% of Google's
  figures (E4B shapes only), peak RSS at most 2 GiB.

    python bench/slice_e4b.py [--repeat 1] [--preset e4b-shape] [--outtype bf16]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import bench_parser, ensure_checkpoint, warm_page_cache, write_results  # noqa: E402
from measure import run_measured  # noqa: E402

from gguf import GGUFReader  # noqa: E402

from gemma3n_gguf.core.checkpoint import Checkpoint  # noqa: E402
from gemma3n_gguf.model.config import TextConfig  # noqa: E402
from gemma3n_gguf.slice.configs import E4B_FULL_WIDTH, OFFICIAL_CONFIGS, OfficialConfig  # noqa: E402

BENCH = "slice_e4b"
QUANTIZED = ("e2.54b-layer", "Q4_K_M")  # the configuration also written quantized in the same pass
PEAK_RSS_LIMIT = 2 << 30
EFFECTIVE_TOLERANCE = 0.01


def main() -> None:
    parser = bench_parser(__doc__, default_preset="e4b-shape")
    parser.add_argument("--outtype", default="bf16", choices=("f32", "f16", "bf16", "q8_0"))
    args = parser.parse_args()
    ckpt = ensure_checkpoint(args.workdir, args.preset)
    full_width = TextConfig.from_hf(Checkpoint(ckpt).config).intermediate_sizes[0]
    warm_page_cache(ckpt)
    out_dir = args.workdir / "slices"
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(c, ["--outtype", args.outtype], args.outtype) for c in OFFICIAL_CONFIGS]
    jobs += [(c, ["--scheme", QUANTIZED[1]], QUANTIZED[1]) for c in OFFICIAL_CONFIGS if c.slug == QUANTIZED[0]]
    runs, checks = [], {}
    for repeat in range(args.repeat):
        for config, typing, label in jobs:
            out = out_dir / f"{config.slug}-{label}.gguf"
            cmd = [sys.executable, "-m", "gemma3n_gguf", "slice", str(ckpt), "-c", config.slug, *typing, "-o", str(out)]
            m = run_measured(f"slice {config.slug} {label}", cmd, log_path=str(out_dir / f"{config.slug}-{label}.log"),
                             output=out)
            runs.append(m.record(f"{config.slug}:{label}", repeat, config=config.slug, type=label))
            if repeat == 0 and m.returncode == 0:
                checks[f"{config.slug}:{label}"] = check_output(out, config, full_width, m.peak_rss_bytes)
            out.unlink(missing_ok=True)
    path = write_results(BENCH, args, runs, checks)
    failed = [key for key, c in checks.items() if not c["ok"]]
    print(f"wrote {path}; {len(checks)} outputs checked, {len(failed)} failed {failed or ''}")
    sys.exit(1 if failed or len(checks) != len(jobs) else 0)


def check_output(path: Path, config: OfficialConfig, full_width: int, peak_rss: int) -> dict:
    """What the GGUF says against the table."""
    reader = GGUFReader(path)
    fields = reader.fields
    widths = [int(fields["gemma3n.feed_forward_length"].parts[i][0]) for i in fields["gemma3n.feed_forward_length"].data]
    layers = int(fields["gemma3n.block_count"].parts[-1][0])
    effective = int(fields["gemma3n_gguf.slice.effective_parameters"].parts[-1][0])
    check = {"layers": layers, "layers_ok": layers == config.num_layers,
             "widths_ok": widths == list(config.widths(full_width)),
             "effective_parameters": effective, "peak_rss_ok": peak_rss <= PEAK_RSS_LIMIT}
    if full_width == E4B_FULL_WIDTH:  # Google's figures are for E4B's shapes
        check["google_effective_b"] = config.effective_params_b
        check["effective_rel_error"] = round(effective / (config.effective_params_b * 1e9) - 1, 5)
        check["effective_ok"] = abs(check["effective_rel_error"]) <= EFFECTIVE_TOLERANCE
    check["ok"] = all(v for k, v in check.items() if k.endswith("_ok"))
    return check


if __name__ == "__main__":
    main()
