"""Rewrite a GGUF with gguf-py: a Gemma 3n file as an older converter would have written it.

``truncate_vocab`` keeps only the first ``n_vocab`` ids in the tokenizer and in the tables
indexed by token id, like the June 2025 llama.cpp converter whose files hold Gemma 3n's
262,144 text ids without the 256 multimodal ones.
"""

from __future__ import annotations

from pathlib import Path

from gguf import GGUFReader, GGUFValueType, GGUFWriter

_TOKEN_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")
_TOKEN_TABLES = ("token_embd.weight", "per_layer_token_embd.weight")


def truncate_vocab(source: Path, destination: Path, n_vocab: int) -> Path:
    reader = GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(str(destination), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        if name in _TOKEN_ARRAYS:
            value = value[:n_vocab]
        sub_type = field.types[1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, field.types[0], sub_type=sub_type)
    for tensor in reader.tensors:
        data = tensor.data[:n_vocab] if tensor.name in _TOKEN_TABLES else tensor.data
        writer.add_tensor(tensor.name, data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return destination
