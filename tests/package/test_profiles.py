"""Runtime profiles for quantize: the PLE type Ollama can gather, its key types, the record in the GGUF."""

from __future__ import annotations

import hashlib

import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter

from cli_helpers import run_cli

from gemma3n_gguf.quantize import quantize

PLE = "per_layer_token_embd.weight"


def tensor_types(path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}


def field(path, key):
    f = GGUFReader(path).fields.get(key)
    return None if f is None else (f.contents(), f.types[0])


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def stock_q4(tiny_text_checkpoint, tmp_path_factory):
    return quantize(tiny_text_checkpoint, tmp_path_factory.mktemp("stock") / "q4.gguf", scheme="Q4_K_M").path


def test_llama_cpp_target_is_llama_quantizes_output(capsys, tmp_path, tiny_text_checkpoint, stock_q4):
    out = tmp_path / "q4.gguf"
    run = run_cli(capsys, "quantize", tiny_text_checkpoint, "-s", "Q4_K_M", "--target", "llama.cpp", "-o", out)
    assert run.code == 0, run.err
    assert sha(out) == sha(stock_q4)


def test_ollama_keeps_the_ple_table_f16_for_k_quants_and_records_it(capsys, tmp_path, tiny_text_checkpoint, stock_q4):
    out = tmp_path / "q4-ollama.gguf"
    run = run_cli(capsys, "quantize", tiny_text_checkpoint, "-s", "Q4_K_M", "--target", "ollama", "-o", out)
    assert run.code == 0, run.err
    assert "per_layer_token_embd.weight F16" in run.err
    ours, stock = tensor_types(out), tensor_types(stock_q4)
    assert stock[PLE] == "Q6_K" and ours[PLE] == "F16"
    assert {k: v for k, v in ours.items() if k != PLE} == {k: v for k, v in stock.items() if k != PLE}
    assert field(out, "gemma3n_gguf.target") == ("ollama", GGUFValueType.STRING)
    assert "F16" in field(out, "gemma3n_gguf.target.choices")[0]


@pytest.mark.parametrize("args, ple", [(["-s", "Q8_0"], "Q8_0"), (["-s", "Q4_K_M", "--ple-type", "Q8_0"], "Q8_0")])
def test_ollama_keeps_a_gatherable_type(capsys, tmp_path, tiny_text_checkpoint, args, ple):
    out = tmp_path / "o.gguf"
    run = run_cli(capsys, "quantize", tiny_text_checkpoint, *args, "--target", "ollama", "-o", out)
    assert run.code == 0, run.err
    assert tensor_types(out)[PLE] == ple


def test_ollama_refuses_a_ple_type_its_gpu_path_cannot_gather(capsys, tmp_path, tiny_text_checkpoint):
    run = run_cli(capsys, "quantize", tiny_text_checkpoint, "-s", "Q4_K_M", "--target", "ollama",
                  "--ple-type", "Q6_K", "-o", tmp_path / "o.gguf")
    assert run.code == 1 and "cannot be gathered by row" in run.err
    assert list(tmp_path.iterdir()) == []


def test_ollama_rewrites_a_float_shared_kv_layers_as_uint32(capsys, tmp_path, tiny_text_f32_gguf):
    # The key as Unsloth's first Gemma 3n uploads wrote it, which Ollama's reader silently ignored.
    damaged = tmp_path / "float-key.gguf"
    reader = GGUFReader(tiny_text_f32_gguf)
    writer = GGUFWriter(str(damaged), "gemma3n")
    for name, f in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "gemma3n.attention.shared_kv_layers":
            writer.add_key_value(name, float(f.contents()), GGUFValueType.FLOAT32)
            continue
        writer.add_key_value(name, f.contents(), f.types[0],
                             sub_type=f.types[1] if f.types[0] == GGUFValueType.ARRAY else None)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    expected = field(tiny_text_f32_gguf, "gemma3n.attention.shared_kv_layers")

    for target, key_type in (("llama.cpp", GGUFValueType.FLOAT32), ("ollama", GGUFValueType.UINT32)):
        out = tmp_path / f"{target}.gguf"
        run = run_cli(capsys, "quantize", damaged, "-s", "Q8_0", "--target", target, "-o", out)
        assert run.code == 0, run.err
        value, found_type = field(out, "gemma3n.attention.shared_kv_layers")
        assert found_type == key_type and value == expected[0]


def test_unknown_target_is_refused(capsys, tmp_path, tiny_text_checkpoint):
    run = run_cli(capsys, "quantize", tiny_text_checkpoint, "--target", "vllm", "-o", tmp_path / "o.gguf")
    assert run.code == 1 and "unknown --target 'vllm'" in run.err
