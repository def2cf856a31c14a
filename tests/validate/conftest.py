"""Fixtures of the validation tests that do not need the lead's Gemma 3n fixtures.

``tiny_llama_gguf`` is a 2-layer random model of llama.cpp's plain ``llama`` architecture,
written with gguf-py in a fraction of a second: enough to test how logits are read out of
llama-cpp-python (row alignment, KV reset between windows, first_row) independently of the
Gemma 3n converter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest

BOS_ID = 1
HELLO_TOKEN = "\u2581hello"  # SentencePiece's word-start marker + "hello"


@dataclass(frozen=True)
class TinyGGUF:
    path: Path
    n_vocab: int
    hello_id: int


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    # SentencePiece merges pairs of pieces, so every prefix of "▁hello" must be a piece too
    pieces = ["▁", "h", "e", "l", "o"] + [HELLO_TOKEN[:n] for n in range(2, 7)]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + pieces
    tokens += [f"w{i}" for i in range(60)]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(pieces) + 60)  # unknown, control, byte, normal
    scores = [0.0] * len(tokens)
    return tokens, scores, types


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> TinyGGUF:
    n_embd, n_layer, n_head, n_ff = 32, 2, 4, 64
    tokens, scores, types = _vocabulary()
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * 0.3).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_file_type(0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_tensor("token_embd.weight", weight(len(tokens), n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    writer.add_tensor("output.weight", weight(len(tokens), n_embd))
    for block in range(n_layer):
        writer.add_tensor(f"blk.{block}.attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("q", "k", "v", "output"):
            writer.add_tensor(f"blk.{block}.attn_{name}.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"blk.{block}.ffn_norm.weight", np.ones(n_embd, np.float32))
        writer.add_tensor(f"blk.{block}.ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{block}.ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"blk.{block}.ffn_down.weight", weight(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return TinyGGUF(path=path, n_vocab=len(tokens), hello_id=tokens.index(HELLO_TOKEN))


@pytest.fixture(scope="session")
def tiny_llama_gguf(tmp_path_factory: pytest.TempPathFactory) -> TinyGGUF:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("tiny-llama") / "tiny.gguf")


# ---------------------------------------------------------------------------------------------
# Quantized tiny-text files and a shared reference cache, for the pipeline, gate and sweep tests.

PIPELINE_CHUNKS = 4  # 4 windows of 512: 1020 scored tokens, enough for llama-perplexity's statistics


def quantize_checkpoint(checkpoint: Path, destination: Path, scheme: str) -> Path:
    """Quantize with the project's one-pass k-quant engine, straight from the checkpoint."""
    from gemma3n_gguf.quantize import quantize

    return quantize(checkpoint, destination, scheme=scheme).path


@pytest.fixture(scope="session")
def tiny_text_quant(tiny_text_checkpoint, tmp_path_factory):
    """``tiny_text_quant(scheme)``: tiny-text quantized by our engine, made once per session."""
    made: dict[str, Path] = {}
    directory = tmp_path_factory.mktemp("quants")

    def get(scheme: str) -> Path:
        if scheme not in made:
            made[scheme] = quantize_checkpoint(tiny_text_checkpoint, directory / f"tiny-text-{scheme}.gguf", scheme)
        return made[scheme]

    return get


@pytest.fixture(scope="session")
def shared_reference_cache(tmp_path_factory) -> Path:
    """One reference cache for the session: the tiny-text reference pass runs once per protocol."""
    return tmp_path_factory.mktemp("reference-cache")


def corrupt_copy(source: Path, destination: Path, tensor: str) -> Path:
    """A copy of ``source`` with the rows of one tensor permuted in place (valid blocks, wrong model)."""
    import shutil

    from gguf import GGUFReader

    shutil.copy(source, destination)
    reader = GGUFReader(destination, "r+")
    data = next(t for t in reader.tensors if t.name == tensor).data
    data[...] = data[np.random.default_rng(0).permutation(len(data))].copy()
    reader.data.flush()
    del reader
    assert destination.read_bytes() != source.read_bytes()
    return destination


@pytest.fixture(scope="session", autouse=True)
def _private_default_cache(tmp_path_factory):
    """Runs that do not pass a cache directory write to a temporary one, never to ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
