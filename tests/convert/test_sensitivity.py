"""The parity test is sensitive: each kind of converter bug, planted in a correct GGUF, fails it.

Corruptions are made in place on a copy of the f32 file (gguf-py's reader maps tensors
writable), so each one changes exactly the tensor or key it names.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gguf import GGUFReader

from conftest import llama_logits
from gemma3n_gguf.validate.metrics.bounds import PARITY_BOUNDS
from gemma3n_gguf.validate.metrics.parity import parity_stats

pytestmark = pytest.mark.slow


def _tensor(reader: GGUFReader, name: str) -> np.ndarray:
    return next(t for t in reader.tensors if t.name == name).data


def transpose(name):
    def apply(r):
        data = _tensor(r, name)
        data[...] = data.T.copy()
    return apply


def permute_rows(name):
    def apply(r):
        data = _tensor(r, name)
        data[...] = data[np.random.default_rng(0).permutation(len(data))].copy()
    return apply


def swap(a, b):
    def apply(r):
        x, y = _tensor(r, a), _tensor(r, b)
        x_copy = x.copy()
        x[...] = y
        y[...] = x_copy
    return apply


def set_values(name, fn):
    def apply(r):
        data = _tensor(r, name)
        data[...] = fn(data.copy())
    return apply


def swap_rope_bases(r):
    full, swa = (r.fields[f"gemma3n.rope.freq_base{s}"] for s in ("", "_swa"))
    a, b = full.parts[full.data[0]][0], swa.parts[swa.data[0]][0]
    full.parts[full.data[0]][0], swa.parts[swa.data[0]][0] = b, a


def halve_sliding_window(r):
    f = r.fields["gemma3n.attention.sliding_window"]
    f.parts[f.data[0]][0] //= 2


CORRUPTIONS = {
    "attn_q transposed": transpose("blk.0.attn_q.weight"),
    "attn_output transposed": transpose("blk.7.attn_output.weight"),
    "laurel_l transposed": transpose("blk.2.laurel_l.weight"),
    "altup_correct_coef transposed": transpose("blk.3.altup_correct_coef.weight"),
    "ffn_gate rows permuted": permute_rows("blk.12.ffn_gate.weight"),
    "attn_v rows permuted": permute_rows("blk.15.attn_v.weight"),
    "token_embd rows permuted": permute_rows("token_embd.weight"),
    "per_layer_token_embd rows permuted": permute_rows("per_layer_token_embd.weight"),
    "per_layer_model_proj rows permuted": permute_rows("per_layer_model_proj.weight"),
    "inp_gate rows permuted": permute_rows("blk.6.inp_gate.weight"),
    "proj rows permuted": permute_rows("blk.9.proj.weight"),
    "altup_predict_coef rows permuted": permute_rows("blk.1.altup_predict_coef.weight"),
    "altup_router rows permuted": permute_rows("blk.8.altup_router.weight"),
    "altup_proj stacked in reverse": set_values("altup_proj.weight", lambda d: d[::-1]),
    "altup_unembd_proj stacked in reverse": set_values("altup_unembd_proj.weight", lambda d: d[::-1]),
    "q_norm and k_norm swapped": swap("blk.2.attn_q_norm.weight", "blk.2.attn_k_norm.weight"),
    "post-attention and post-ffw norms swapped": swap("blk.5.post_attention_norm.weight", "blk.5.post_ffw_norm.weight"),
    "altup_correct_scale zeroed": set_values("blk.4.altup_correct_scale.weight", np.zeros_like),
    "per_layer_proj_norm zeroed": set_values("per_layer_proj_norm.weight", np.zeros_like),
    "output_norm +1 (Gemma 3 habit)": set_values("output_norm.weight", lambda d: d + 1),
    "rope bases swapped": swap_rope_bases,
    "sliding window halved": halve_sliding_window,
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corruption_fails_parity(corruption, tiny_text_f32_gguf, tmp_path, parity_ids, tiny_text_reference_logits):
    broken = tmp_path / "broken.gguf"
    shutil.copy(tiny_text_f32_gguf, broken)
    reader = GGUFReader(broken, "r+")
    CORRUPTIONS[corruption](reader)
    reader.data.flush()
    del reader
    assert broken.read_bytes() != tiny_text_f32_gguf.read_bytes()
    stats = parity_stats(tiny_text_reference_logits, llama_logits(broken, parity_ids))
    assert PARITY_BOUNDS["f32"].violations(stats), f"{corruption} went unnoticed: {stats.to_dict()}"
