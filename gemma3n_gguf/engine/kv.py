"""The key-values of a quantized GGUF, in the order llama-quantize writes them.

llama-quantize copies every key of its input in order, then sets ``general.quantization_version``
and ``general.file_type`` (``gguf_set_val_*`` removes a key and appends it, so both move to the
end), drops the split keys, and appends the CLI's ``quantize.imatrix.*`` overrides. Values keep
their GGUF types; strings are kept as raw bytes so nothing is re-encoded on the way through
(``GGUFFile.raw_kv`` in core/gguf_read.py reads them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gguf import GGUFValue, GGUFValueType, GGUFWriter, Keys

from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.core.gguf_read import ALIGNMENT_KEY
from gemma3n_gguf.core.llama_facts import GGUF_ALIGNMENT  # llama-quantize's output always uses it

KVs = dict[str, GGUFValue]

QUANTIZATION_VERSION = 2  # GGML_QNT_VERSION
SPLIT_KEYS = (Keys.Split.LLM_KV_SPLIT_NO, Keys.Split.LLM_KV_SPLIT_COUNT, Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT)


def check_copyable(kv: Mapping[str, GGUFValue], source: str) -> None:
    """Refuse inputs whose keys llama-quantize would copy into a broken file."""
    count = kv.get(Keys.Split.LLM_KV_SPLIT_COUNT)
    if count is not None and int(count.value) > 1:
        raise QuantizationError(f"{source} is one part of a split GGUF; merge the parts first "
                                "(llama-gguf-split --merge) and quantize the merged file")
    alignment = kv.get(ALIGNMENT_KEY)
    if alignment is not None and int(alignment.value) != GGUF_ALIGNMENT:
        raise QuantizationError(f"{source} uses a data alignment of {alignment.value}; llama-quantize "
                                f"would keep that key but align to {GGUF_ALIGNMENT}, so it is not supported")


def quantized_kv(kv: Mapping[str, GGUFValue], ftype: int,
                 extra: Iterable[tuple[str, str | int]] = ()) -> KVs:
    """``kv`` as llama-quantize rewrites it for file type ``ftype``, plus the ``extra`` overrides."""
    out = dict(kv)
    _set(out, Keys.General.QUANTIZATION_VERSION, GGUFValue(QUANTIZATION_VERSION, GGUFValueType.UINT32))
    _set(out, Keys.General.FILE_TYPE, GGUFValue(int(ftype), GGUFValueType.UINT32))
    for key in SPLIT_KEYS:
        out.pop(key, None)
    for key, value in extra:
        # llama_model_kv_override: strings stay strings, integers are written as u32
        if isinstance(value, str):
            _set(out, key, GGUFValue(value.encode(), GGUFValueType.STRING))
        else:
            _set(out, key, GGUFValue(abs(int(value)) & 0xFFFFFFFF, GGUFValueType.UINT32))
    return out


def _set(kv: KVs, key: str, value: GGUFValue) -> None:
    kv.pop(key, None)
    kv[key] = value


def install_kv(writer: GGUFWriter, kv: Mapping[str, GGUFValue]) -> None:
    """Make ``kv`` (architecture key included, in its place) the writer's whole metadata."""
    writer.kv_data[0].clear()
    writer.kv_data[0].update(kv)


def collect_kv(add_metadata, arch: str) -> KVs:
    """The key-values a ``GGUFWriter`` callback adds, without writing a file."""
    writer = GGUFWriter(None, arch)
    add_metadata(writer)
    return dict(writer.kv_data[0])


def metadata_nbytes(kv: Mapping[str, GGUFValue]) -> int:
    """Bytes the key-value section of a GGUF takes."""
    packer = GGUFWriter(None, "unused")
    total = 0
    for key, value in kv.items():
        total += len(packer._pack_val(key, GGUFValueType.STRING, add_vtype=False))
        total += len(packer._pack_val(value.value, value.type, add_vtype=True, sub_type=value.sub_type))
    return total
