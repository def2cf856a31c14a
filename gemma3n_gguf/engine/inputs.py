"""What the write path reads: a Hugging Face checkpoint, or an F32/F16/BF16 GGUF.

Both look like the file llama-quantize would be given. A checkpoint appears as the GGUF our
converter writes (same tensors, shapes, types, key-values): ``convert`` writes that view as it
is, ``quantize`` re-types it; its rows are read from the safetensors on demand. Its vision and
audio towers appear as the projector GGUF (:class:`ProjectorInput`), which ``convert`` writes. Rows are addressed along a tensor's first numpy axis ("units":
a row of a matrix, or a whole matrix of the stacked 3-D AltUp projections).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from gguf import GGMLQuantizationType as GGMLType

from gemma3n_gguf.core.checkpoint import Checkpoint, bf16_to_f32
from gemma3n_gguf.model.metadata import model_name
from gemma3n_gguf.model.text_plan import PlannedTensor, build_text_plan
from gemma3n_gguf.model.text_gguf import (
    checked_bf16_words,
    encoded_rows,
    is_bf16_copy,
    load_checked_config,
    stored_type,
    text_metadata,
)
from gemma3n_gguf.core.encode import encode_rows
from gemma3n_gguf.core.errors import QuantizationError
from gemma3n_gguf.core.ggml import ggml_library
from gemma3n_gguf.core.gguf_read import open_gguf
from gemma3n_gguf.engine.kv import KVs, check_copyable, collect_kv
from gemma3n_gguf.engine.planner import TensorChoice, TensorInfo, plan_types
from gemma3n_gguf.engine.projector_rules import F16_MAX, Role, widened
from gemma3n_gguf.engine.schemes import FLOAT_TYPES, convert_scheme, projector_scheme

ARCH = "gemma3n"


class QuantizeInput(Protocol):
    """A model to quantize, seen as llama-quantize sees its input file."""

    label: str  # for messages
    tensors: list[TensorInfo]  # input order; shapes in ggml order
    warnings: list[str]

    def kv(self) -> KVs:
        """The input file's key-values, in order."""

    def units(self, name: str) -> tuple[int, int]:
        """(number of units along the first numpy axis, values per unit)."""

    def values(self, name: str, start: int, stop: int) -> np.ndarray:
        """Units ``[start, stop)`` as float32 rows of ne0 values (dequantized if need be)."""

    def stored(self, name: str, start: int, stop: int) -> np.ndarray:
        """Units ``[start, stop)`` as the bytes the input file stores (for tensors kept as they are)."""

    def default_output(self, scheme: str) -> Path: ...


def _ggml_shape(numpy_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(numpy_shape))


# -- a checkpoint, as the GGUF our converter would write ------------------------------------------

INTERMEDIATE_TYPES = ("f32", "f16", "bf16")  # what quantize accepts: files llama-quantize reads


class CheckpointInput:
    """A Gemma 3n checkpoint as the file ``convert --outtype <intermediate>`` writes (F32 by
    default): the converter's tensor plan, typed by the planner with the converter's scheme
    (each type with its reason), and its key-values. Rows are read and encoded on demand."""

    def __init__(self, directory: str | os.PathLike[str] | Checkpoint, *, intermediate: str = "f32",
                 force: bool = False, exact_mm_tokens: bool = False):
        self.scheme = convert_scheme(intermediate)
        self.intermediate = intermediate
        # an opened checkpoint may be a view of one (a MatFormer slice: slice/checkpoint.py)
        self.ckpt = directory if isinstance(directory, Checkpoint) else Checkpoint(directory)
        self.config, self.warnings = load_checked_config(self.ckpt, force)
        self.plan = build_text_plan(self.ckpt, self.config, exact_mm_tokens=exact_mm_tokens)
        self._planned: dict[str, PlannedTensor] = {t.name: t for t in self.plan.tensors}
        # the tensors as the checkpoint holds them, then as the converted file holds them
        self.checkpoint_tensors = [TensorInfo(t.name, _ggml_shape(t.shape), stored_type(self.ckpt, t))
                                   for t in self.plan.tensors]
        self.choices = plan_types(self.checkpoint_tensors, self.scheme)
        self.tensors = [TensorInfo(t.name, t.shape, c.qtype) for t, c in zip(self.checkpoint_tensors, self.choices)]
        self._types = {c.name: c.qtype for c in self.choices}
        self.name = model_name(self.ckpt.directory, self.ckpt.config)
        self.label = str(self.ckpt.directory)

    def kv(self) -> KVs:
        """What ``convert --outtype <intermediate>`` writes, computed by the converter itself."""
        return collect_kv(text_metadata(self.ckpt, self.config, self.plan, self.intermediate), ARCH)

    def units(self, name: str) -> tuple[int, int]:
        shape = self._planned[name].shape
        return shape[0], int(np.prod(shape[1:], dtype=np.int64))

    def values(self, name: str, start: int, stop: int) -> np.ndarray:
        t, qtype = self._planned[name], self._types[name]
        if qtype == GGMLType.F32 and is_bf16_copy(self.ckpt, t):
            rows = bf16_to_f32(checked_bf16_words(self.ckpt, t, start, stop))  # exact, half the work
        else:
            rows = _decoded(encoded_rows(self.ckpt, t, qtype, start, stop), qtype, t.shape[-1])
        return rows.reshape(-1, t.shape[-1])

    def stored(self, name: str, start: int, stop: int) -> np.ndarray:
        encoded = encoded_rows(self.ckpt, self._planned[name], self._types[name], start, stop)
        return np.ascontiguousarray(encoded).view(np.uint8)

    def default_output(self, scheme: str) -> Path:
        return self.ckpt.directory / f"{self.name}-{scheme.upper()}.gguf"


def _decoded(encoded: np.ndarray, qtype: GGMLType, ne0: int) -> np.ndarray:
    """float32 values of rows encoded as ``qtype``."""
    if qtype == GGMLType.F32:
        return encoded
    if qtype == GGMLType.BF16:
        return bf16_to_f32(encoded)
    if qtype == GGMLType.F16:
        return encoded.astype(np.float32)
    return ggml_library().dequantize(qtype, np.ascontiguousarray(encoded).reshape(-1).view(np.uint8), ne0)


# -- a checkpoint's vision and audio towers, as the projector GGUF ---------------------------------

class ProjectorTensor(Protocol):
    """One tensor of the projector's plan (convert/projector/plan.py)."""

    name: str  # GGUF name
    hf_name: str
    shape: tuple[int, ...]  # numpy order, as written (a channel vector's [1, C, 1, 1] included)
    role: Role


def projector_file_name(name: str, mmproj_type: str) -> str:
    """``mmproj-<model>-F16.gguf``, the community's naming."""
    return f"mmproj-{name}-{mmproj_type.upper()}.gguf"


class ProjectorInput:
    """A checkpoint's vision and audio towers as the projector ``convert --mmproj-type`` writes:
    the projector's tensor plan, typed by the planner with the projector's rule table, and the
    key-values ``kv``. An F16 tensor whose values F16 cannot hold is widened to a type llama.cpp
    still runs (this reads those tensors once); every overruled request is in ``warnings``.
    Rows are read and encoded on demand, refusing NaN and infinity as the text converter does."""

    def __init__(self, ckpt: Checkpoint, tensors: Sequence[ProjectorTensor], *, mmproj_type: str, kv: KVs):
        self.scheme = projector_scheme(mmproj_type)
        self.ckpt = ckpt
        self._kv = kv
        self._planned = {t.name: t for t in tensors}
        self.checkpoint_tensors = [TensorInfo(t.name, _ggml_shape(t.shape), GGMLType[ckpt.ref(t.hf_name).dtype], t.role)
                                   for t in tensors]
        choices = plan_types(self.checkpoint_tensors, self.scheme)
        self.warnings = _grouped_warnings(choices)
        self.choices = [self._within_f16(c) for c in choices]
        self.warnings += [wide.reason for wide, c in zip(self.choices, choices) if wide is not c]
        self.tensors = [TensorInfo(t.name, t.shape, c.qtype, t.role) for t, c in zip(self.checkpoint_tensors, self.choices)]
        self._types = {c.name: c.qtype for c in self.choices}
        self.name = model_name(ckpt.directory, ckpt.config)
        self.label = f"{ckpt.directory} (projector)"

    def _within_f16(self, choice: TensorChoice) -> TensorChoice:
        if choice.qtype != GGMLType.F16:
            return choice
        planned = self._planned[choice.name]
        values = self.ckpt.read(planned.hf_name)  # projector tensors are small (at most 9.4 M values)
        if not values.size or float(np.abs(values).max()) <= F16_MAX:
            return choice
        wide = widened(planned.role, choice.name)
        return TensorChoice(choice.name, wide.qtype, wide.reason, overruled=True)

    def kv(self) -> KVs:
        return dict(self._kv)

    def units(self, name: str) -> tuple[int, int]:
        shape = self._planned[name].shape
        return shape[0], int(np.prod(shape[1:], dtype=np.int64))

    def values(self, name: str, start: int, stop: int) -> np.ndarray:
        ne0 = self._planned[name].shape[-1]
        return _decoded(self._encoded(name, start, stop), self._types[name], ne0).reshape(-1, ne0)

    def stored(self, name: str, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._encoded(name, start, stop)).view(np.uint8)

    def _encoded(self, name: str, start: int, stop: int) -> np.ndarray:
        t = self._planned[name]
        if tuple(self.ckpt.ref(t.hf_name).shape) == t.shape:
            rows = self.ckpt.read(t.hf_name, start, stop)
        else:  # a vector written [1, C, 1, 1]: one unit
            rows = self.ckpt.read(t.hf_name).reshape(t.shape)[start:stop]
        return encode_rows(rows, self._types[name], name)

    def default_output(self, scheme: str) -> Path:
        return self.ckpt.directory / projector_file_name(self.name, scheme)


def _grouped_warnings(choices: Sequence[TensorChoice]) -> list[str]:
    """One warning per overruling rule: how many tensors it struck, and one of them."""
    struck: dict[str, list[str]] = {}
    for c in choices:
        if c.overruled:
            struck.setdefault(c.reason, []).append(c.name)
    return [f"{reason}: {len(names)} tensor(s), e.g. {names[0]}" for reason, names in struck.items()]


# -- a GGUF file (requantizing) -------------------------------------------------------------------

class GGUFInput:
    """A gemma3n GGUF file; quantized tensors are dequantized with ggml's own routines."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.label = str(self.path)
        self.warnings: list[str] = []
        self.reader = open_gguf(self.path)
        self._kv = self.reader.raw_kv()
        arch = self._kv.get("general.architecture")
        arch_name = bytes(arch.value).decode(errors="replace") if arch is not None else None
        if arch_name != ARCH:
            raise QuantizationError(f"{self.path} is a {arch_name or 'non-model'} GGUF; "
                                    f"only {ARCH} models can be quantized with this tool")
        check_copyable(self._kv, str(self.path))
        self._tensors = {t.name: t for t in self.reader.tensors}
        self.tensors = [TensorInfo(t.name, tuple(int(n) for n in t.shape), GGMLType(t.tensor_type))
                        for t in self.reader.tensors]

    def kv(self) -> KVs:
        return dict(self._kv)

    def units(self, name: str) -> tuple[int, int]:
        t = self._tensors[name]
        n_units = int(t.shape[-1]) if len(t.shape) > 1 else 1
        return n_units, int(t.n_elements) // n_units

    def values(self, name: str, start: int, stop: int) -> np.ndarray:
        t = self._tensors[name]
        qtype, ne0 = GGMLType(t.tensor_type), int(t.shape[0])
        data = self._unit_slice(t, start, stop)
        if qtype == GGMLType.F32:
            return np.array(data, dtype=np.float32).reshape(-1, ne0)
        if qtype == GGMLType.F16:
            return data.astype(np.float32).reshape(-1, ne0)
        if qtype == GGMLType.BF16:
            return bf16_to_f32(np.ascontiguousarray(data).view(np.uint16)).reshape(-1, ne0)
        return ggml_library().dequantize(qtype, np.ascontiguousarray(data).reshape(-1), ne0)

    def stored(self, name: str, start: int, stop: int) -> np.ndarray:
        t = self._tensors[name]
        return np.ascontiguousarray(self._unit_slice(t, start, stop)).view(np.uint8)

    def _unit_slice(self, t, start: int, stop: int) -> np.ndarray:
        return t.data[start:stop] if len(t.shape) > 1 else t.data

    def default_output(self, scheme: str) -> Path:
        stem = re.sub(r"-(F32|F16|BF16|Q8_0)$", "", self.path.stem, flags=re.IGNORECASE)
        return self.path.with_name(f"{stem}-{scheme.upper()}.gguf")


def open_input(source: str | os.PathLike[str], *, intermediate: str = "f32", force: bool = False,
               exact_mm_tokens: bool = False) -> QuantizeInput:
    """A checkpoint directory or a GGUF file, by what ``source`` is."""
    path = Path(source)
    if intermediate not in INTERMEDIATE_TYPES:
        raise QuantizationError(f"--intermediate must be one of {', '.join(INTERMEDIATE_TYPES)}, "
                                f"not {intermediate!r}")
    if path.is_dir():
        return CheckpointInput(path, intermediate=intermediate, force=force, exact_mm_tokens=exact_mm_tokens)
    if not path.exists():
        raise QuantizationError(f"{path} does not exist: give a checkpoint directory or a GGUF file")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise QuantizationError(f"{path} is neither a checkpoint directory nor a GGUF file")
    if force or exact_mm_tokens or intermediate != "f32":
        raise QuantizationError("--intermediate, --force and --exact-mm-tokens apply to checkpoints, not to GGUF inputs")
    return GGUFInput(path)


def quantized_sources(tensors: list[TensorInfo], converted: Callable[[TensorInfo], bool]) -> list[TensorInfo]:
    """The tensors that would be re-typed from an already quantized type."""
    return [t for t in tensors if converted(t) and t.source_type not in FLOAT_TYPES]
