"""The projector GGUF: names, shapes, types llama.cpp can run, values, and metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.convert.projector.config import ProjectorConfig, VisionConfig, vision_violations

TYPES = ("f32", "f16", "bf16", "q8_0")

# What llama.cpp (vendored in llama-cpp-python 0.3.36) can run, per kind of tensor:
# ggml-cpu ops.cpp asserts conv_2d kernels are F32/F16; conv_2d_dw with F32 kernels aborts
# the scheduler (GGML_ASSERT(*cur_backend_id != -1), reproduced); k*k rows cannot be Q8_0.
RUNNABLE_CONV = {"F32", "F16"}
RUNNABLE_DEPTHWISE = {"F16", "BF16"}
DEPTHWISE_SUFFIXES = ("dw_start.conv.weight", "dw_mid.conv.weight", "down_conv.weight")
CONV_SUFFIXES = ("conv_exp.weight", "conv_pwl.weight", "pw_exp.conv.weight", "pw_proj.conv.weight",
                 "proj.weight")

# Names llama.cpp's own converter (conversion/gemma.py + gguf-py tensor_mapping.py) gives
# these audio tensors, taken from its output; the two sub-sampling norms it cannot map
# are written under gguf-py's A_ENC_CONV1D_NORM name.
REFERENCE_AUDIO_NAMES = {
    "model.audio_tower.conformer.1.attention.attn.q_proj.weight": "a.blk.1.attn_q.weight",
    "model.audio_tower.conformer.1.attention.attn.per_dim_scale": "a.blk.1.per_dim_scale",
    "model.audio_tower.conformer.0.attention.attn.relative_position_embedding.pos_proj.weight":
        "a.blk.0.linear_pos.weight",
    "model.audio_tower.conformer.0.attention.post.weight": "a.blk.0.attn_out.weight",
    "model.audio_tower.conformer.0.attention.pre_attn_norm.weight": "a.blk.0.ln1.weight",
    "model.audio_tower.conformer.0.ffw_layer_end.ffw_layer_1.weight": "a.blk.0.ffn_up_1.weight",
    "model.audio_tower.conformer.0.lconv1d.depthwise_conv1d.weight": "a.blk.0.conv_dw.weight",
    "model.audio_tower.conformer.0.lconv1d.pre_layer_norm.weight": "a.blk.0.conv_norm.weight",
    "model.audio_tower.conformer.0.lconv1d.conv_norm.weight": "a.blk.0.norm_conv.weight",
    "model.audio_tower.conformer.0.norm.weight": "a.blk.0.layer_pre_norm.weight",
    "model.audio_tower.subsample_conv_projection.conv_1.conv.weight": "a.conv1d.1.weight",
    "model.audio_tower.subsample_conv_projection.conv_0.norm.weight": "a.conv1d.0.norm.weight",
    "model.audio_tower.subsample_conv_projection.input_proj_linear.weight": "a.pre_encode.out.weight",
    "model.embed_audio.embedding_projection.weight": "mm.a.input_projection.weight",
}


def _tensors(path) -> dict:
    return {t.name: t for t in GGUFReader(path).tensors}


def _values(t) -> np.ndarray:
    return dequantize(np.asarray(t.data), t.tensor_type)


def _field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


# -- configs llama.cpp cannot run (no checkpoint needed) ----------------------------------


def _config(**vision_changes) -> ProjectorConfig:
    vision = dict(architecture="mobilenetv5_300m_enc", hidden_size=2048, rms_norm_eps=1e-6, vocab_offset=262144,
                  vocab_size=128, model_args=None, image_size=768, image_width=768, image_seq_length=256,
                  image_mean=(0.0,) * 3, image_std=(1.0,) * 3, rescales_to_unit=True)
    vision.update(vision_changes)
    return ProjectorConfig(2048, VisionConfig(**vision), None)


def test_official_vision_config_is_runnable():
    assert vision_violations(_config()) == []


@pytest.mark.parametrize("changes, fragment", [
    ({"hidden_size": 1024}, "needs 2048"),
    ({"image_seq_length": 196}, "256 tokens"),
    ({"image_size": 800, "image_width": 800}, "not a multiple of 256"),
    ({"image_width": 1024}, "not square"),
    ({"rescales_to_unit": False}, "1/255"),
    ({"architecture": "mobilenetv4_conv_small"}, "mobilenetv5_300m_enc"),
    ({"model_args": {"block_args": [[{"block_type": "uir", "stride": 1, "dw_kernel_size_mid": 3}]]}}, "stride 1"),
    ({"model_args": {"block_args": [[{"block_type": "uir", "stride": 2, "dw_kernel_size_mid": 0,
                                      "dw_kernel_size_start": 3}]]}}, "without dw_mid"),
    ({"model_args": {"block_args": [[{"block_type": "er", "stride": 2, "exp_kernel_size": 5}]]}}, "3x3"),
    ({"model_args": {"msfa_output_resolution": 8}}, "msfa_output_resolution"),
], ids=["width", "tokens", "size", "square", "rescale", "arch", "stride", "dw_mid", "er-kernel", "model-args"])
def test_vision_violations_name_the_problem(changes, fragment):
    problems = vision_violations(_config(**changes))
    assert any(fragment in p for p in problems), problems


def test_text_width_must_match_vision_width():
    cfg = ProjectorConfig(1024, _config().vision, None)
    assert any("mismatch between text model and mmproj" in p for p in vision_violations(cfg))


# -- the tiny-mm projector ----------------------------------------------------------------


@pytest.mark.slow
def test_every_vision_and_audio_tensor_is_written_once(tiny_mm_checkpoint, tiny_mm_mmproj):
    result = tiny_mm_mmproj("f16")
    ckpt = Checkpoint(tiny_mm_checkpoint)
    wanted = {n for n in ckpt.tensors if n.startswith(("model.vision_tower.", "model.embed_vision.",
                                                       "model.audio_tower.", "model.embed_audio."))}
    written = [t.hf_name for t in result.plan.tensors]
    assert sorted(written) == sorted(wanted)
    assert len(_tensors(result.path)) == len(wanted)


@pytest.mark.slow
def test_layout_llama_cpp_reads(tiny_mm_mmproj):
    result = tiny_mm_mmproj("f16")
    reader = GGUFReader(result.path)
    tensors = {t.name: t for t in reader.tensors}
    assert _field(reader, "general.architecture") == "clip"
    assert _field(reader, "general.type") == "mmproj"
    assert _field(reader, "clip.vision.projector_type") == "gemma3nv"
    assert _field(reader, "clip.audio.projector_type") == "gemma3na"
    # 768 px / patch 3 = the 256 tokens clip.cpp reports for gemma3nv; MobileNet-V5 needs no mean/std
    assert _field(reader, "clip.vision.image_size") == 768
    assert _field(reader, "clip.vision.patch_size") == 3
    assert _field(reader, "clip.vision.image_mean") == [0.0, 0.0, 0.0]
    assert _field(reader, "clip.vision.image_std") == [1.0, 1.0, 1.0]
    assert _field(reader, "clip.vision.embedding_length") == 2048
    for key in ("clip.vision.feed_forward_length", "clip.vision.block_count", "clip.vision.attention.head_count",
                "clip.vision.projection_dim", "clip.vision.attention.layer_norm_epsilon"):
        assert key in reader.fields, key  # clip.cpp's loader throws without them
    # ggml {1, 1, C, 1}: broadcastable over [W, H, C, B] feature maps (1-D aborts in ggml_mul)
    assert tensors["v.blk.1.0.layer_scale.gamma"].shape.tolist() == [1, 1, 24, 1]
    assert tensors["v.conv_stem.conv.bias"].shape.tolist() == [1, 1, 16, 1]
    assert tensors["v.conv_stem.conv.weight"].shape.tolist() == [3, 3, 3, 16]
    assert tensors["v.blk.2.1.attn.key.down_conv.weight"].shape.tolist() == [3, 3, 1, 32]
    assert tensors["v.conv_stem.conv.weight"].tensor_type.name == "F32"
    assert tensors["mm.input_projection.weight"].tensor_type.name == "F16"
    assert result.plan.blocks_per_stage == [1, 1, 3, 3]


@pytest.mark.slow
@pytest.mark.parametrize("mmproj_type", TYPES)
def test_types_are_ones_llama_cpp_can_run(tiny_mm_mmproj, mmproj_type):
    result = tiny_mm_mmproj(mmproj_type)
    tensors = _tensors(result.path)
    vision = {n: t.tensor_type.name for n, t in tensors.items() if n.startswith("v.")}
    depthwise = {n: q for n, q in vision.items() if n.endswith(DEPTHWISE_SUFFIXES)}
    convs = {n: q for n, q in vision.items() if n.endswith(CONV_SUFFIXES) and n not in depthwise}
    assert depthwise and convs
    assert set(depthwise.values()) <= RUNNABLE_DEPTHWISE, depthwise
    assert set(convs.values()) <= RUNNABLE_CONV, convs
    assert all(t.tensor_type.name == "F32" for n, t in tensors.items() if len(t.shape) == 1), "1-D tensors stay F32"
    adjusted_depthwise = mmproj_type.upper() not in RUNNABLE_DEPTHWISE
    adjusted_convs = mmproj_type.upper() not in RUNNABLE_CONV
    assert any("depthwise" in w for w in result.warnings) == adjusted_depthwise, result.warnings
    assert any(w.startswith("conv kernels") for w in result.warnings) == adjusted_convs, result.warnings


@pytest.mark.slow
@pytest.mark.parametrize("mmproj_type", TYPES)
def test_values_survive(tiny_mm_checkpoint, tiny_mm_mmproj, mmproj_type):
    result = tiny_mm_mmproj(mmproj_type)
    ckpt = Checkpoint(tiny_mm_checkpoint)
    tensors = _tensors(result.path)
    # worst error of one value per type: f16/bf16 rounding (f16 subnormals step by 2^-24), q8_0 one
    # step of 1/127 of the largest value (an upper bound of its block's scale)
    tolerance = {"F32": 0.0, "F16": 2 ** -11, "BF16": 2 ** -8, "Q8_0": 1 / 127}
    for planned in result.plan.tensors:
        t = tensors[planned.name]
        original = ckpt.read(planned.hf_name).reshape(planned.shape)
        restored = _values(t).reshape(planned.shape)
        scale = np.abs(original).max() if t.tensor_type.name == "Q8_0" else np.abs(original)
        assert np.all(np.abs(restored - original) <= tolerance[t.tensor_type.name] * scale + 2 ** -24), planned.name


@pytest.mark.slow
def test_checkpoint_with_audio_weights_converts(tiny_mm_checkpoint, tiny_mm_mmproj):
    """llama.cpp's converter stops on subsample_conv_projection.conv_N.norm; this one writes it."""
    result = tiny_mm_mmproj("f16")
    ckpt = Checkpoint(tiny_mm_checkpoint)
    by_hf = {t.hf_name: t.name for t in result.plan.tensors}
    for hf_name, gguf_name in REFERENCE_AUDIO_NAMES.items():
        assert by_hf[hf_name] == gguf_name
    tensors = _tensors(result.path)
    norm = tensors["a.conv1d.0.norm.weight"]
    np.testing.assert_array_equal(_values(norm), ckpt.read("model.audio_tower.subsample_conv_projection.conv_0.norm.weight"))
    assert result.modalities == ["vision", "audio"]


@pytest.mark.slow
def test_audio_settings_are_recorded(tiny_mm_checkpoint, tiny_mm_mmproj):
    from gemma3n_gguf.convert.projector.metadata import read_audio_settings
    from gemma3n_gguf.core.gguf_read import open_gguf

    reader = open_gguf(tiny_mm_mmproj("f16").path)
    audio, extractor = read_audio_settings(reader)
    config = json.loads((tiny_mm_checkpoint / "config.json").read_text())["audio_config"]
    preprocessor = json.loads((tiny_mm_checkpoint / "preprocessor_config.json").read_text())
    for key in ("conf_num_hidden_layers", "conf_attention_chunk_size", "conf_attention_context_left",
                "sscp_conv_channel_size", "sscp_conv_kernel_size", "vocab_offset", "hidden_size"):
        assert audio[key] == config[key], key
    for key in ("sampling_rate", "frame_length", "hop_length", "fft_length", "feature_size", "fft_overdrive"):
        assert extractor[key] == preprocessor[key], key
    for key in ("min_frequency", "max_frequency", "mel_floor", "preemphasis"):
        assert extractor[key] == pytest.approx(preprocessor[key], rel=1e-6), key
    assert _field(reader, "clip.audio.num_mel_bins") == 128
    assert _field(reader, "clip.audio.block_count") == config["conf_num_hidden_layers"]


@pytest.mark.slow
def test_values_beyond_f16_get_a_wider_runnable_type(tiny_mm_checkpoint, tmp_path):
    from gemma3n_gguf.convert.projector.convert import convert_mmproj
    from mm_fixtures import linked_copy, scale_tensor

    ckpt = linked_copy(tiny_mm_checkpoint, tmp_path / "ckpt")
    block = "model.vision_tower.timm_model.blocks.1.0."
    for suffix in ("pw_exp.conv.weight", "dw_mid.conv.weight"):
        scale_tensor(ckpt, block + suffix, 1e7)  # far beyond F16's 65504
    result = convert_mmproj(ckpt, tmp_path / "m.gguf", mmproj_type="f16")
    types = {t.name: t.tensor_type.name for t in GGUFReader(result.path).tensors}
    assert types["v.blk.1.0.pw_exp.conv.weight"] == "F32"  # convs run in F32
    assert types["v.blk.1.0.dw_mid.conv.weight"] == "BF16"  # depthwise kernels cannot be F32
    assert types["v.blk.2.0.pw_exp.conv.weight"] == "F16"  # the others keep the requested type
    assert sum("exceed the F16 range" in w for w in result.warnings) == 2, result.warnings


@pytest.mark.slow
def test_inspect_summarises_the_projector(tiny_mm_mmproj):
    from gemma3n_gguf.inspection import summarize

    summary = summarize(tiny_mm_mmproj("q8_0").path)
    projector = summary.projector
    assert summary.architecture == "clip"
    assert projector["modalities"] == ["vision", "audio"]
    assert projector["blocks_per_stage"] == [1, 1, 3, 3]
    assert projector["tokens_per_image"] == 256
    assert projector["types"]["audio"].get("Q8_0", 0) > 0  # audio matrices quantized
    assert projector["types"]["vision"].get("Q8_0") == 1  # only mm.embedding, which clip.cpp never reads
