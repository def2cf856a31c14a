"""``sweep`` on tiny-text: one reference pass, KLD ordered by scheme, table, JSON and plot.

Every file is quantized by the project's k-quant engine (the sweep's default quantizer),
straight from the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run_cli
from gemma3n_gguf.validate.sweep import run as sweep_module

from .conftest import PIPELINE_CHUNKS

pytestmark = pytest.mark.slow

ORDERED = ("Q8_0", "Q6_K", "Q4_K_M", "Q2_K")  # best to worst


@pytest.fixture(scope="module")
def swept(tiny_text_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    cache = tmp_path_factory.mktemp("sweep-cache")  # fresh: the sweep must run the reference itself
    phases: list[str] = []
    result = sweep_module.sweep(tiny_text_checkpoint, ["Q2_K", "Q4_K_M", "Q6_K", "Q8_0"], out,
                                chunks=PIPELINE_CHUNKS, cache_dir=cache,
                                on_progress=lambda phase, done, total: phases.append(phase))
    return result, out, phases


def test_one_reference_pass_for_all_schemes(swept):
    result, out, phases = swept
    assert result.reference_runs == 1
    assert [r.reference.cached for r in result.reports] == [False, True, True, True]
    assert [Path(r.path) for r in result.rows] == [out / f"tiny-text-{s}.gguf" for s in ("Q2_K", "Q4_K_M", "Q6_K", "Q8_0")]
    assert {"quantize Q2_K", "reference", "validate Q2_K", "quantize Q8_0", "validate Q8_0"} <= set(phases)


def test_kld_follows_the_schemes_precision(swept):
    result, _, _ = swept
    kld = {row.scheme: row.kld_mean for row in result.rows}
    assert all(row.kld_mean.uncertainty > 0 for row in result.rows)
    assert result.reports[0].kld.n_tokens >= 1000
    values = [kld[scheme].value for scheme in ORDERED]
    assert values == sorted(values) and len(set(values)) == len(values), kld
    bits = {row.scheme: row.bits_per_weight for row in result.rows}
    assert bits["Q2_K"] < bits["Q4_K_M"] < bits["Q8_0"]


def test_table_json_and_plot_are_written(swept):
    result, out, _ = swept
    assert result.outputs == {"markdown": str(out / "sweep.md"), "json": str(out / "sweep.json"),
                              "plot": str(out / "sweep.png")}
    table = Path(result.outputs["markdown"]).read_text()
    assert "| scheme | size | bits/weight | PPL ratio | mean KLD | 99% KLD | same top-1 |" in table
    assert [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| Q")] == \
        ["Q2_K", "Q4_K_M", "Q6_K", "Q8_0"]
    document = json.loads(Path(result.outputs["json"]).read_text())
    assert [row["scheme"] for row in document["rows"]] == ["Q2_K", "Q4_K_M", "Q6_K", "Q8_0"]
    assert document["rows"][0]["kld_mean"]["value"] == result.rows[0].kld_mean.value
    assert document["reference_runs"] == 1
    assert document["weight_repack"] is True and "weight repacking on," in table  # llama.cpp's default
    for row in result.rows:
        assert Path(row.path).stat().st_size == row.file_bytes

    import matplotlib.image

    png = Path(result.outputs["plot"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert height >= 300 and width >= 500


def test_sweep_command(capsys, tmp_path, tiny_text_checkpoint, shared_reference_cache):
    run = run_cli(capsys, "sweep", tiny_text_checkpoint, "--schemes", "q8_0,Q2_K", "-o", tmp_path / "s",
                  "--chunks", PIPELINE_CHUNKS, "--cache-dir", shared_reference_cache, "--delete-models", "--json")
    assert run.code == 0, run.err
    document = json.loads(run.out)
    assert [row["scheme"] for row in document["rows"]] == ["Q8_0", "Q2_K"]
    assert document["rows"][0]["kld_mean"]["value"] < document["rows"][1]["kld_mean"]["value"]
    assert all(Path(path).is_file() for path in document["outputs"].values())
    assert not any(Path(row["path"]).exists() for row in document["rows"])  # --delete-models


def test_unknown_scheme_fails_before_any_work(capsys, tmp_path, tiny_text_checkpoint):
    run = run_cli(capsys, "sweep", tiny_text_checkpoint, "--schemes", "Q4_K_M,Q9_X", "-o", tmp_path / "s")
    assert run.code == 1 and "unknown scheme 'Q9_X'" in " ".join(run.err.split())
    assert not (tmp_path / "s").exists()
