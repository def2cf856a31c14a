"""Every bench script runs end to end on a tiny checkpoint (--repeat 1) and records a complete
results file, under the tiny preset's own name so it can never pass for the real-size figures.

The peer converter comes from the pinned sdist in the cache (`python bench/peers.py` fetches it
once; this test never downloads)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import peers
import pytest
import report
from harness import RESULT_FIELDS, RUN_FIELDS
from safetensors import safe_open

ROOT = Path(__file__).resolve().parent.parent
PRESET = "tiny-text"
MACHINE_FIELDS = ("cpu_model", "logical_cores", "usable_cores", "memory_bytes", "os", "python", "packages", "llama_cpp")
BUILD_FIELDS = ("version", "ggml_library", "compiler", "wheel", "system_info")
# bench script -> (extra options, the roles of the runs of one repeat)
BENCHES = {
    "convert_e2b": (["--compare"], ("ours", "peer_convert")),
    "quantize_e2b": ([], ("ours", "peer_convert", "peer_quantize", "kernel_floor")),
    # llama-imatrix comes from the patched runtime's cache (.ci/run's install step builds it)
    "imatrix_peer": (["--ctx", "512", "--chunks", "2"],
                     ("ours", "peer_imatrix", "peer_imatrix_f32_kv", "peer_imatrix_f16")),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One workdir for every script: each tiny checkpoint is built once (tiny-text for five scripts,
    tiny-mm for two), and each script keeps its outputs in its own subdirectory or file names."""
    return tmp_path_factory.mktemp("bench") / "work"


@pytest.fixture(scope="module")
def bench_dirs(workdir, tmp_path_factory) -> tuple[Path, Path]:
    try:
        peers.llama_cpp_tree(download=False)
    except peers.PeerMissing as missing:
        pytest.fail(str(missing))
    return workdir, tmp_path_factory.mktemp("results")


@pytest.mark.parametrize("bench", BENCHES)
def test_bench_script_records_every_field(bench, bench_dirs):
    workdir, results_dir = bench_dirs
    options, roles = BENCHES[bench]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{bench}.py"), "--repeat", "1", "--preset", PRESET,
                           "--workdir", str(workdir), "--results-dir", str(results_dir), *options],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (results_dir / f"{bench}.json").exists()
    results = json.loads((results_dir / f"{bench}.{PRESET}.json").read_text())

    assert set(RESULT_FIELDS) <= results.keys()
    assert (results["bench"], results["preset"], results["repeat"], results["source"]) == (bench, PRESET, 1, "measured")
    assert f"bench/{bench}.py --repeat 1 --preset {PRESET}" in results["command"]
    machine = results["machine"]
    assert all(machine[field] for field in MACHINE_FIELDS)
    assert all(machine["llama_cpp"][field] for field in BUILD_FIELDS)
    assert "AVX" in machine["llama_cpp"]["system_info"] or "NEON" in machine["llama_cpp"]["system_info"]

    assert [run["role"] for run in results["runs"]] == list(roles)
    for run in results["runs"]:
        assert set(RUN_FIELDS) <= run.keys()
        assert run["exit"] == 0 and run["wall_s"] > 0, (run["tool"], _logs(workdir))
        anon, file = run["peak_rss_anon_bytes"], run["peak_rss_file_bytes"]
        # each tool is one process, so neither sampled peak exceeds its high-water mark (a python
        # interpreter alone holds megabytes of both kinds)
        assert 2**20 < anon <= run["peak_rss_bytes"] < 2**34 and 2**20 < file <= run["peak_rss_bytes"]
    outputs = {run["role"]: run["output_bytes"] for run in results["runs"]}
    if bench == "imatrix_peer":
        compared = results["checks"]["compared"]
        assert all(c["counts_equal"] and c["entries"] and not c["only_ours"] for c in compared.values())
        assert all(size > 2**10 for size in outputs.values())
    else:
        assert outputs["ours"] > 2**20 and outputs["peer_convert"] > 2**20
        tensors = results["checks"]["tensors"]
        assert tensors["identical"] == tensors["tensors"] > 0 and not tensors["different"]
    if bench == "convert_e2b":
        assert results["checks"]["checkpoint"] == _checkpoint_size(workdir / PRESET)
        assert f"The `{PRESET}` checkpoint: " in report.render_results(results)
    assert "| `gemma3n-gguf " in report.render_results(results)


def _checkpoint_size(checkpoint: Path) -> dict:
    """Parameters and bytes of a checkpoint's shards, read with the safetensors library itself."""
    shards = sorted(checkpoint.glob("*.safetensors"))
    parameters = 0
    for shard in shards:
        with safe_open(shard, "np") as f:
            parameters += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return {"parameters": parameters, "safetensors_bytes": sum(shard.stat().st_size for shard in shards)}


def test_audio_encode_bench_records_both_sides(workdir, tmp_path):
    """bench/audio_encode.py on tiny-mm (4 s of audio): the patched runtime and transformers, one
    run each, and their soft tokens compared (the runtime comes from .ci/run's install step)."""
    results_dir = tmp_path / "results"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "audio_encode.py"), "--repeat", "1", "--preset",
                           "tiny-mm", "--seconds", "4", "--workdir", str(workdir), "--results-dir",
                           str(results_dir)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((results_dir / "audio_encode.tiny-mm.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys() and results["preset"] == "tiny-mm"
    assert [run["role"] for run in results["runs"]] == ["runtime", "transformers"]
    for run in results["runs"]:
        assert set(RUN_FIELDS) <= run.keys() and run["exit"] == 0 and 0 < run["encode_s"] < run["wall_s"]
    checks = results["checks"]
    assert (checks["runtime_tokens"], checks["transformers_tokens"]) == (188, 25)
    assert checks["min_cosine"] >= 0.999
    assert "| `llama.cpp mtmd (patched" in report.render_results(results)


def _logs(workdir: Path) -> str:
    return "\n".join(f"== {log.name}\n{log.read_text()[-2000:]}" for log in sorted(workdir.glob("*.log")))


# The quality benches already run on tiny presets: their smoke runs are reduced variants of the real
# ones (one type, one scheme on one window), checked for what each figure says.
QUALITY_BENCHES = {
    "parity_tiny": (["--outtypes", "f32"], ["convert_f32"]),
    "sweep_tiny": (["--schemes", "Q8_0", "--chunks", "1"], ["sweep", "sweep_f32"]),
    "exact_mm_tiny": (["--size-presets", "tiny-mm"], ["exact", "plain"]),
}


@pytest.mark.parametrize("bench", QUALITY_BENCHES)
def test_quality_bench_records_its_figures(bench, workdir, tmp_path_factory):
    results_dir = tmp_path_factory.mktemp("results")
    options, roles = QUALITY_BENCHES[bench]
    plot = results_dir / "sweep.png"
    done = subprocess.run(_quality_command(bench, workdir, results_dir, plot, options), capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((results_dir / f"{bench}.json").read_text())
    assert set(RESULT_FIELDS) <= results.keys() and results["repeat"] == 1
    assert [run["role"] for run in results["runs"]] == roles
    for run in results["runs"]:
        assert set(RUN_FIELDS) <= run.keys() and run["exit"] == 0 and run["wall_s"] > 0
    checks, rendered = results["checks"], report.render_results(results)
    if bench == "parity_tiny":
        f32 = checks["parity"]["f32"]
        assert f32["violations"] == [] and f32["stats"]["n_positions"] == 400 and f32["stats"]["mean_kld"] > 0
        assert "| f32 | " in rendered and "| yes |" in rendered
    elif bench == "sweep_tiny":
        assert [row["scheme"] for row in checks["sweep"]["rows"]] == ["Q8_0"] and checks["sweep"]["windows"] == 1
        # one reference pass, then the f32 sweep reads it from the cache
        assert (checks["sweep"]["reference_runs"], checks["sweep_f32"]["reference_runs"]) == (1, 0)
        assert 0 < checks["sweep_f32"]["rows"][0]["kld_mean"]["value"] < checks["sweep"]["rows"][0]["kld_mean"]["value"]
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "| Q8_0 | " in rendered and "An f32 conversion of the same checkpoint" in rendered
    else:
        exact, plain = checks["parity"]["exact"], checks["parity"]["plain"]
        assert exact["n_image_tokens"] == 256 and exact["after_image"]["top1_agreement"] == 1.0
        assert plain["after_image"]["mean_kld"] > 100 * exact["after_image"]["mean_kld"]
        # tiny-mm's untied output.weight: its whole vocabulary (1024 text + 256 multimodal ids) x hidden 2048
        plans = checks["f16_plans"]["tiny-mm"]
        assert (plans["exact"]["output_parameters"], plans["plain"]["output_parameters"]) == (1280 * 2048, 0)
        assert plans["exact"]["file_bytes"] - plans["plain"]["file_bytes"] >= 2 * 1280 * 2048
        assert "without `--exact-mm-tokens`" in rendered and "`tiny-mm` +3 M parameters" in rendered
        # the audio prompt in the patched runtime: transformers' 188 soft tokens per clip, 25 of them
        # from the tower for 4 s (64000 samples -> 397 frames -> two stride-2 convs -> every 4th)
        audio = checks["audio"]
        assert (audio["n_tokens"], audio["n_reference_tokens"], audio["n_encoder_tokens"]) == (188, 188, 25)
        assert audio["min_cosine"] >= 0.999 and audio["after_audio"]["top1_agreement"] == 1.0
        assert "An audio prompt (4 s clip)" in rendered


def _quality_command(bench: str, work: Path, results_dir: Path, plot: Path, options: list[str]) -> list[str]:
    command = [sys.executable, str(ROOT / "bench" / f"{bench}.py"), "--repeat", "1", "--workdir", str(work),
               "--results-dir", str(results_dir), *options]
    return command + (["--plot", str(plot)] if bench == "sweep_tiny" else [])
