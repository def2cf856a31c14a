"""What llama.cpp (as vendored in llama-cpp-python 0.3.36) hard-codes, each fact defined once.

Every module that must agree with the runtime imports the number from here, so a change of
runtime is one edit. Sources: ``src/llama-model.cpp`` (gemma3n hparams), ``tools/perplexity``.
"""

from __future__ import annotations

GGUF_ALIGNMENT = 32
"""``general.alignment`` default: tensor data offsets are multiples of this."""

KV_SHARED_FROM = 20
"""gemma3n ``n_layer_kv_from_start``: layers from this one on reuse earlier layers' K/V."""

SPARSE_LAYERS = 10
"""gemma3n ``n_layer_sparsity``: activation sparsity applies to layers 0..9."""

LOG_PROB_FLOOR = -16.0
"""llama-perplexity sums the KLD only over entries with log p_ref above this (in nats)."""
