"""Lazy reader for Hugging Face safetensors checkpoints.

Only the JSON headers are parsed up front. Tensor data is read on demand with positioned
reads (not mmap), so the resident memory of a conversion is the tensor or row chunk in hand,
never the checkpoint: the 2-billion-parameter PLE table of E2B is read a few rows at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from gemma3n_gguf.core.errors import CheckpointError
from gemma3n_gguf.core.safetensors import RAW_DTYPES, TensorRef, read_shard_header

__all__ = ["Checkpoint", "TensorRef", "bf16_to_f32", "raw_to_f32", "read_json_object"]

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def bf16_to_f32(words: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 words (uint16) to float32 exactly (one ufunc pass, no temporary)."""
    return np.left_shift(words, 16, dtype=np.uint32).view(np.float32)


def raw_to_f32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return bf16_to_f32(raw)
    return raw.astype(np.float32, copy=False)


class Checkpoint:
    """A checkpoint directory: config, tokenizer files and lazily readable tensors."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CheckpointError(f"{self.directory} is not a directory")
        self.config = self._read_config()
        self.tensors: dict[str, TensorRef] = {}
        for shard in self._shard_files():
            for ref in read_shard_header(shard).tensors:
                if ref.name in self.tensors:
                    raise CheckpointError(f"tensor {ref.name} is stored twice ({self.tensors[ref.name].file.name} "
                                          f"and {shard.name}): the checkpoint is inconsistent")
                self.tensors[ref.name] = ref
        self._check_index_agrees()

    # -- files ---------------------------------------------------------------------------
    def _read_config(self) -> dict:
        path = self.directory / "config.json"
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: is this a Hugging Face checkpoint directory?")
        return read_json_object(path)

    def _shard_files(self) -> list[Path]:
        index = self.directory / INDEX_FILE
        if index.is_file():
            self._index = _read_weight_map(index)
            names = sorted(set(self._index.values()))
            missing = [n for n in names if not (self.directory / n).is_file()]
            if missing:
                raise CheckpointError(
                    f"shard(s) listed in {INDEX_FILE} are missing: {', '.join(missing)}; "
                    "download or copy the complete checkpoint"
                )
            return [self.directory / n for n in names]
        self._index = None
        single = self.directory / SINGLE_FILE
        if single.is_file():
            return [single]
        found = sorted(self.directory.glob("*.safetensors"))
        if not found:
            raise CheckpointError(f"no safetensors weights in {self.directory}")
        return found

    def _check_index_agrees(self) -> None:
        if not self._index:
            return
        absent = sorted(name for name, shard in self._index.items()
                        if name not in self.tensors or self.tensors[name].file.name != PurePosixPath(shard).name)
        if absent:
            raise CheckpointError(
                f"{len(absent)} tensor(s) listed in {INDEX_FILE} are not in their shard, "
                f"e.g. {absent[0]}: the checkpoint is incomplete"
            )

    # -- tensor data ---------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def ref(self, name: str) -> TensorRef:
        try:
            return self.tensors[name]
        except KeyError:
            raise CheckpointError(f"tensor {name} is not in the checkpoint") from None

    def read_raw(self, name: str, start_row: int = 0, stop_row: int | None = None) -> np.ndarray:
        """Rows ``[start_row, stop_row)`` of dimension 0, in the stored dtype (bf16 as uint16)."""
        ref = self.ref(name)
        rows = ref.shape[0] if ref.shape else 1
        stop_row = rows if stop_row is None else min(stop_row, rows)
        raw_dtype = RAW_DTYPES[ref.dtype]
        row_bytes = ref.row_nbytes
        count = (stop_row - start_row) * row_bytes
        with open(ref.file, "rb") as f:
            f.seek(ref.offset + start_row * row_bytes)
            buf = f.read(count)
        if len(buf) != count:
            raise CheckpointError(f"{ref.file.name} is truncated: tensor {name} is cut short")
        shape = ((stop_row - start_row), *ref.shape[1:]) if ref.shape else ()
        return np.frombuffer(buf, dtype=raw_dtype).reshape(shape)

    def read(self, name: str, start_row: int = 0, stop_row: int | None = None) -> np.ndarray:
        """Rows of a tensor widened to float32."""
        ref = self.ref(name)
        return raw_to_f32(self.read_raw(name, start_row, stop_row), ref.dtype)

    def iter_rows(self, name: str, rows_per_chunk: int) -> Iterator[np.ndarray]:
        ref = self.ref(name)
        for start in range(0, ref.shape[0], rows_per_chunk):
            yield self.read(name, start, start + rows_per_chunk)


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; any way it can fail is a CheckpointError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def _read_weight_map(index: Path) -> dict[str, str]:
    """The index's ``weight_map``: tensor names to shard files inside the checkpoint directory.

    Symlinks are followed when the shard is opened (a Hugging Face hub snapshot keeps every
    file as a link into ``../../blobs``); only the names written in the index are restricted.
    """
    weight_map = read_json_object(index).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: weight_map must be an object of tensor names to shard file names")
    for name, shard in weight_map.items():
        if not _is_inside(shard):
            raise CheckpointError(f"{index}: tensor {name} is mapped to {shard!r}, outside the checkpoint "
                                  "directory (absolute paths and '..' are refused)")
    return weight_map


def _is_inside(shard: str) -> bool:
    posix, windows = PurePosixPath(shard), PureWindowsPath(shard)
    return bool(shard) and not (posix.is_absolute() or windows.is_absolute() or windows.drive
                                or ".." in posix.parts or ".." in windows.parts)
