"""bench/report.py: the README's benchmark sections are what the committed results files render to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import report

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def test_readme_agrees_with_committed_results():
    readme = (ROOT / "README.md").read_text()
    for bench in report.RENDERERS:
        assert f"<!-- bench:{bench} -->" in readme and f"<!-- /bench:{bench} -->" in readme
    assert report.update_readme(readme) == readme, "README is stale: run `python bench/report.py`"


def _run(role, repeat, wall, anon_gib, file_gib, output=None, exit=0, **extra):
    return {"tool": f"tool {role}", "role": role, "repeat": repeat, "exit": exit, "wall_s": wall,
            "peak_rss_bytes": int((anon_gib + file_gib) * GIB), "peak_rss_anon_bytes": int(anon_gib * GIB),
            "peak_rss_file_bytes": int(file_gib * GIB), "output_bytes": output, **extra}


def _results(bench, runs, checks):
    machine = {"cpu_model": "Test CPU", "usable_cores": 2, "memory_bytes": 24 * GIB, "os": "Linux", "python": "3.11.7",
               "llama_cpp": {"version": "0.3.36", "ggml_library": "libggml-cpu.so.0.25.3", "compiler": "GCC 12",
                             "system_info": "CPU : AVX2 = 1"}}
    return {"schema": 1, "bench": bench, "source": "measured", "date": "2030-01-01T00:00:00+00:00",
            "command": f"python bench/{bench}.py --repeat 3", "preset": "e2b-shape", "repeat": 3,
            "peer": "llama-cpp-python==0.3.36", "machine": machine, "runs": runs, "checks": checks}


SAME = {"tensors": 727, "only_ours": [], "only_reference": [], "identical": 727, "different": []}


def test_convert_table_shows_median_and_range_of_successful_runs():
    runs = [_run("ours", 0, 30.0, 0.25, 0.5, 8 * GIB), _run("ours", 1, 10.0, 0.75, 0.5, 8 * GIB),
            _run("ours", 2, 20.0, 0.5, 0.5, 8 * GIB),
            _run("peer_convert", 0, 80.0, 18.0, 0.5, 8 * GIB), _run("peer_convert", 1, 60.0, 17.0, 0.5, 8 * GIB),
            _run("peer_convert", 2, 1.0, 0.1, 0.1, None, exit=1)]
    text = report.render_results(_results("convert_e2b", runs, {"tensors": SAME}))
    assert "| `tool ours` | 3/3 | 20.0 s (10.0 s-30.0 s) | 1.00 GiB (0.75 GiB-1.25 GiB) " \
           "| 512.0 MiB (256.0 MiB-768.0 MiB) | 512.0 MiB | 8.00 GiB |" in text
    assert "| `tool peer_convert` (llama-cpp-python==0.3.36 sdist) | 2/3 | 70.0 s (60.0 s-80.0 s) | 18.00 GiB (17.50 GiB-18.50 GiB) " \
           "| 17.50 GiB (17.00 GiB-18.00 GiB) | 512.0 MiB | 8.00 GiB |" in text
    assert "All 727 tensors of the two bf16 files are identical" in text
    assert "Ours takes 0.29x the reference's median wall time." in text
    assert "on Test CPU, 2 cores, 24.0 GiB" in text and "`python bench/convert_e2b.py --repeat 3`" in text


def test_quantize_table_adds_the_two_steps_per_repeat_and_the_kernel_floor():
    runs = []
    for repeat, (ours, conv, quant, kernels) in enumerate([(110, 70, 120, 100), (100, 75, 110, 104), (120, 80, 115, 98)]):
        runs += [_run("ours", repeat, ours, 0.2, 0.0, 3 * GIB), _run("peer_convert", repeat, conv, 20.0, 0.5, 8 * GIB),
                 _run("peer_quantize", repeat, quant, 9.0, 1.0, 3 * GIB),
                 _run("kernel_floor", repeat, kernels + 5, 0.1, 0.0, None, kernel_s=kernels)]
    text = report.render_results(_results("quantize_e2b", runs, {"scheme": "Q4_K_M", "tensors": SAME}))
    # two steps per repeat: 190, 185, 195 s; memory is the larger step's
    assert "| llama.cpp two steps, total | 3/3 | 190.0 s (185.0 s-195.0 s) | 20.50 GiB | 20.00 GiB | 1.00 GiB " \
           "| 3.00 GiB |" in text
    assert "| kernel floor (ggml's kernels alone) | 3/3 | 100.0 s (98.0 s-104.0 s) |" in text
    assert "One pass takes 1.10x the kernel floor and is 1.73x faster than the two steps" in text
    assert "All 727 tensors of the two Q4_K_M files are identical" in text


def test_without_results_the_section_says_how_to_produce_them(tmp_path):
    text = report.render("quantize_e2b", tmp_path)
    assert "No results recorded yet" in text and "`python bench/quantize_e2b.py --repeat 3`" in text


def test_report_command_rewrites_a_stale_readme_and_check_catches_it(tmp_path):
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    runs = [_run("ours", 0, 29.1, 0.2, 0.06, 8.31 * GIB), _run("peer_convert", 0, 73.2, 18.0, 0.58, 8.31 * GIB)]
    (results_dir / "convert_e2b.json").write_text(json.dumps(_results("convert_e2b", runs, {})))
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\n<!-- bench:convert_e2b -->\nold table\n<!-- /bench:convert_e2b -->\n\nafter\n")

    def command(*extra):
        return subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), "--readme", str(readme),
                               "--results-dir", str(results_dir), *extra], capture_output=True, text=True)

    stale = command("--check")
    assert stale.returncode == 1 and "-old table" in stale.stdout
    assert command().returncode == 0
    text = readme.read_text()
    assert text.startswith("# title\n\n<!-- bench:convert_e2b -->\nRecorded 2030-01-01") and text.endswith("\n\nafter\n")
    assert "| 29.1 s |" in text and "old table" not in text
    assert command("--check").returncode == 0


def _validate_runs(preset, reference_s, base, peaks):
    """Runs of one validate_e2b preset: reference pass seconds per repeat, (load, pass) of llama.cpp, peak GiB per role."""
    runs = [_run("quantize", 0, 150.0, 0.2, 0.0, 3 * GIB, preset=preset)]
    for repeat, (seconds, (load, logits)) in enumerate(zip(reference_s, base)):
        reference = {"mode": "streamed", "seconds": seconds, "peak_rss_bytes": int(peaks["validate"] * GIB)}
        runs += [_run("validate", repeat, seconds + 30, peaks["validate"], 0.0, preset=preset, report={"reference": reference}),
                 _run("peer_f16_base", repeat, load + logits + 5, 1.0, 8.0, preset=preset,
                      report={"windows": 4, "rows": 1024, "load_s": load, "pass_s": logits})]
    runs += [_run(role, 0, 600.0, peaks[role], 0.0, preset=preset) for role in ("sweep", "imatrix") if role in peaks]
    return runs


def test_validate_section_puts_the_reference_pass_beside_llama_and_holds_the_bound():
    runs = _validate_runs("e2b-shape", [300.0, 200.0, 250.0], [(10.0, 40.0), (20.0, 60.0), (15.0, 35.0)],
                          {"validate": 2.5, "sweep": 2.75, "imatrix": 3.5})
    checks = {"scheme": "Q4_K_M", "ctx": 512, "chunks": 4, "bound_bytes": 3 * GIB,
              "e2b-shape": {"within_bound": {"validate": True, "sweep": True, "imatrix": False}, "sweep_reference_runs": [1]}}
    text = report.render_results(_results("validate_e2b", runs, checks))
    assert "`e2b-shape`, Q4_K_M, `--ctx 512 --chunks 4`:" in text
    assert "| `tool validate` | 3/3 | 280.0 s (230.0 s-330.0 s) | 2.50 GiB |" in text
    # medians: reference 250 s; llama.cpp 15 s load + 40 s logits = 55 s
    assert "Reference pass (streamed, fp32 transformers, 4 windows): 250.0 s, peak RSS 2.50 GiB" in text
    assert "55.0 s (15.0 s load, 40.0 s logits); the reference takes 4.55x its time (medians)." in text
    assert ("Peak RSS against the 3.00 GiB bound: validate 2.50 GiB (within), sweep 2.75 GiB (within), "
            "imatrix 3.50 GiB (NOT within); the sweep ran 1 reference pass for its schemes.") in text


def test_validate_section_names_the_command_of_an_appended_preset():
    runs = _validate_runs("e2b-shape", [250.0], [(15.0, 40.0)], {"validate": 2.5}) + \
        _validate_runs("e4b-shape", [400.0], [(20.0, 60.0)], {"validate": 2.9})
    appended = {"within_bound": {"validate": True}, "sweep_reference_runs": [], "command": "python bench/x.py", "repeat": 1}
    checks = {"scheme": "Q4_K_M", "ctx": 512, "chunks": 4, "bound_bytes": 3 * GIB, "e4b-shape": appended,
              "e2b-shape": {"within_bound": {"validate": True}, "sweep_reference_runs": [],
                            "command": "python bench/validate_e2b.py --repeat 3", "repeat": 3}}
    text = report.render_results(_results("validate_e2b", runs, checks))
    assert "`e4b-shape`, Q4_K_M, `--ctx 512 --chunks 4` (measured by `python bench/x.py`, repeats: 1):" in text
    assert "`e2b-shape`, Q4_K_M, `--ctx 512 --chunks 4`:" in text
    assert "the reference takes 5.00x its time" in text and "validate 2.90 GiB (within)." in text


def test_validate_section_says_which_bounded_run_did_not_finish():
    runs = _validate_runs("e2b-shape", [250.0], [(15.0, 40.0)], {"validate": 2.5, "imatrix": 2.0})
    runs.append(_run("sweep", 0, 20.0, 1.0, 0.0, preset="e2b-shape", exit=-15))
    checks = {"scheme": "Q4_K_M", "ctx": 512, "chunks": 4, "bound_bytes": 3 * GIB,
              "e2b-shape": {"within_bound": {"validate": True, "sweep": False, "imatrix": True}, "sweep_reference_runs": []}}
    text = report.render_results(_results("validate_e2b", runs, checks))
    assert "validate 2.50 GiB (within), sweep did not finish (exit -15), imatrix 2.00 GiB (within)." in text
    assert "| `tool sweep` | 0/1 | - |" in text


def test_package_section_lists_every_stage_and_the_rerun():
    roles = ["quantize_Q4_K_M", "projector", "package", "package_rerun"]
    runs = [_run(role, 0, 10.0 * (i + 1), 0.25, 0.0, GIB) for i, role in enumerate(roles)]
    checks = {"projector": True, "files": ["README.md", "SHA256SUMS", "a.gguf"], "rerun_rewrote": []}
    text = report.render_results(_results("package_e2b", runs, checks))
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `gemma3n-gguf")] == [
        "| `gemma3n-gguf quantize -s Q4_K_M`", "| `gemma3n-gguf convert --mmproj-only`", "| `gemma3n-gguf package`",
        "| `gemma3n-gguf package (re-run)`"]
    assert "The package holds 3 files (with the projector); the re-run on the finished directory rewrote none" in text
    checks["rerun_rewrote"] = ["a.gguf"]
    assert "rewrote a.gguf." in report.render_results(_results("package_e2b", runs, checks))


def test_slice_section_checks_every_configuration_against_the_table():
    runs = [_run("e2b:bf16", 0, 60.0, 0.5, 0.25, 5 * GIB, config="e2b", type="bf16"),
            _run("main:bf16", 0, 90.0, 0.5, 0.25, 8 * GIB, config="main", type="bf16")]
    checks = {"e2b:bf16": {"layers": 30, "layers_ok": True, "widths_ok": True, "effective_parameters": 1_920_000_000,
                           "peak_rss_ok": True, "google_effective_b": 1.91, "effective_rel_error": 0.00524,
                           "effective_ok": True, "ok": True},
              "main:bf16": {"layers": 35, "layers_ok": True, "widths_ok": False, "effective_parameters": 3_980_000_000,
                            "peak_rss_ok": True, "google_effective_b": 3.98, "effective_rel_error": 0.0,
                            "effective_ok": True, "ok": False}}
    text = report.render_results(_results("slice_e4b", runs, checks))
    assert "| e2b | bf16 | 1/1 | 60.0 s | 768.0 MiB | 512.0 MiB | 256.0 MiB | 5.00 GiB | 30 | 1.920 B | 1.91 B | +0.52% | ok |" in text
    assert "| main | bf16 | 1/1 | 90.0 s |" in text and "| NOT ok: widths |" in text
    assert "2 outputs checked" in text and "1 failed (main:bf16)." in text


def test_confined_section_gives_each_role_against_the_bound_and_the_kills():
    confined = {"preset": "e2b-shape", "memory_limit_bytes": 3 * GIB, "cgroup_peak_bytes": 2 * GIB}
    runs = [_run("validate", 0, 600.0, 2.0, 0.5, oom_kills=0, **confined),
            _run("sweep", 0, 900.0, 2.5, 0.75, oom_kills=0, **confined),
            _run("imatrix", 0, 0.0, 3.0, 0.0, exit=-9, oom_kills=1, **confined)]
    runs += [_run("validate", 0, 700.0, 2.25, 0.5, oom_kills=0, **{**confined, "preset": "e4b-shape"})]
    checks = {"scheme": "Q4_K_M", "ctx": 512, "chunks": 4, "bound_bytes": 3 * GIB,
              "e2b-shape": {"oom_kills": 1, "within_bound": {"validate": True, "sweep": False, "imatrix": False},
                            "sweep_reference_runs": [1]},
              "e4b-shape": {"oom_kills": 0, "within_bound": {"validate": True}, "sweep_reference_runs": [],
                            "command": "python bench/validate_confined.py --also e4b-shape --append", "repeat": 1}}
    text = report.render_results(_results("validate_confined", runs, checks))
    assert "| `tool validate` | 1/1 | 600.0 s | 2.50 GiB |" in text
    assert ("Every run but quantize in a memory cgroup of 3.00 GiB (runs the kernel killed for memory: 1; runs "
            "whose cgroup reached its limit, file pages reclaimed there: 0 of 3). "
            "Peak RSS against the 3.00 GiB bound: validate 2.50 GiB (within), sweep 3.25 GiB (NOT within), "
            "imatrix did not finish (exit -9); the sweep ran 1 reference pass for its schemes.") in text
    e4b = text[text.index("`e4b-shape`"):]
    assert e4b.startswith("`e4b-shape`, Q4_K_M, `--ctx 512 --chunks 4` (measured by `python bench/validate_confined.py "
                          "--also e4b-shape --append`, repeats: 1):")
    assert "| `tool validate` | 1/1 | 700.0 s | 2.75 GiB |" in e4b and "validate 2.75 GiB (within)." in e4b
    assert "sweep" not in e4b
