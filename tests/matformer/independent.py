"""Slices computed without the slicer: the original weights cut in torch, and GGUFs read back.

``cut_independently`` rebuilds a MatFormer slice from the full checkpoint's tensors in memory
(its own reading of the MatFormer rules, written apart from gemma3n_gguf.slice); ``gguf_tensors``
reads a GGUF back with gguf-py and dequantizes every tensor under its HF name; ``text_logits``
runs the text model of a config and tensors in transformers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.torch import load_file

from gemma3n_gguf.model.names import classify, gguf_name

TEXT = "model.language_model."
_LAYER = re.compile(r"model\.language_model\.layers\.(\d+)\.(.+)$")


def read_checkpoint(directory: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = json.loads((directory / "config.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return config["text_config"], {k: v.float() for k, v in tensors.items() if k.startswith(TEXT)}


def cut_independently(text: dict, full: dict[str, torch.Tensor], kept: list[int], widths: list[int]):
    """(text config, tensors) of the original model with only ``kept`` layers at ``widths``."""
    n, ple = text["num_hidden_layers"], text["hidden_size_per_layer_input"]
    out = {}
    for name, t in full.items():
        match = _LAYER.match(name)
        if match:
            layer, rest = int(match[1]), match[2]
            if layer not in kept:
                continue
            pos = kept.index(layer)
            if rest in ("mlp.gate_proj.weight", "mlp.up_proj.weight"):
                t = t[: widths[pos]]
            elif rest == "mlp.down_proj.weight":
                t = t[:, : widths[pos]]
            out[f"{TEXT}layers.{pos}.{rest}"] = t
        elif name == TEXT + "embed_tokens_per_layer.weight":
            out[name] = t.view(t.shape[0], n, ple)[:, kept].reshape(t.shape[0], -1)
        elif name == TEXT + "per_layer_model_projection.weight":
            out[name] = t.view(n, ple, t.shape[1])[kept].reshape(-1, t.shape[1])
        else:
            out[name] = t
    first_shared = n - text["num_kv_shared_layers"]
    config = dict(text, num_hidden_layers=len(kept), intermediate_size=list(widths),
                  layer_types=[text["layer_types"][i] for i in kept],
                  num_kv_shared_layers=text["num_kv_shared_layers"] - sum(1 for i in range(first_shared, n) if i not in kept),
                  activation_sparsity_pattern=[text["activation_sparsity_pattern"][i] for i in kept])
    return config, out


def gguf_tensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[list[int], dict[str, torch.Tensor]]:
    """(feed_forward_length per layer, every tensor of ``shapes`` read back from the GGUF; the
    vocabulary-padded tables cut back to the checkpoint's rows)."""
    reader = GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    field = reader.fields["gemma3n.feed_forward_length"]
    widths = [int(field.parts[i][0]) for i in field.data]
    out = {}
    for hf, shape in shapes.items():
        kind, bid, index = classify(hf)
        t = by_name[gguf_name(kind, bid)]
        values = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        values = values.reshape(tuple(int(d) for d in reversed(t.shape)))
        values = values[index] if index is not None else values
        out[hf] = torch.from_numpy(np.array(values[: shape[0]] if values.ndim else values))
    return widths, out


def text_logits(text: dict, tensors: dict[str, torch.Tensor], ids: np.ndarray) -> np.ndarray:
    """float32 logits of transformers' Gemma 3n text model with these weights on ``ids``."""
    from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

    config = Gemma3nTextConfig.from_dict(text)
    config._attn_implementation = "eager"
    model = Gemma3nForCausalLM(config).float().eval()
    state = {"model." + k[len(TEXT):]: v for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"lm_head.weight"}, missing  # tied to embed_tokens
    assert all(".self_attn.k_" in k or ".self_attn.v_" in k for k in unexpected), unexpected  # shared K/V
    with torch.no_grad():
        return model(torch.as_tensor(ids)[None]).logits[0].numpy()
