"""The reference cache and baselines key on every byte of the checkpoint, memoised per file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from gemma3n_gguf.core.checkpoint import Checkpoint
from gemma3n_gguf.core.errors import CheckpointError
from gemma3n_gguf.reference.cache import ReferenceCache, reference_key
from gemma3n_gguf.reference.identity import DigestMemo, checkpoint_content_hash, checkpoint_fingerprint
from gemma3n_gguf.reference.windows import plan_windows


def flip_one_tensor_byte(checkpoint: Path) -> None:
    """Change one byte in the middle of the largest tensor, keeping size and mtime."""
    ckpt = Checkpoint(checkpoint)
    ref = max(ckpt.tensors.values(), key=lambda r: r.nbytes)
    stat = ref.file.stat()
    with open(ref.file, "r+b") as stream:
        # an odd offset between the fingerprint's samples
        stream.seek(ref.offset + ref.nbytes // 2 + 12345)
        byte = stream.read(1)
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([byte[0] ^ 0x01]))
    os.utime(ref.file, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture
def twins(tiny_text_checkpoint, tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "base", tmp_path / "finetune"
    shutil.copytree(tiny_text_checkpoint, a)
    shutil.copytree(tiny_text_checkpoint, b)
    flip_one_tensor_byte(b)
    return a, b


def test_one_tensor_byte_apart_never_share_a_cached_reference(twins, tmp_path):
    base, finetune = twins
    assert checkpoint_fingerprint(base) == checkpoint_fingerprint(finetune)  # why samples are not enough
    memo = tmp_path / "memo.json"
    ids = plan_windows([2] + list(range(10, 200)), 64, bos_id=2)
    keys = [reference_key(checkpoint_content_hash(c, memo), ids, {"dtype": "float32"}) for c in twins]
    assert keys[0] != keys[1]

    cache = ReferenceCache(tmp_path / "cache")
    with cache.create(keys[0], ids, n_vocab=256) as writer:
        for window in ids:
            writer.add_window(np.zeros((len(window.targets), 256), dtype=np.float32))
    assert cache.load(keys[0]) is not None
    assert cache.load(keys[1]) is None


def test_the_content_hash_is_sha256_of_every_identity_file(tiny_text_checkpoint, tmp_path):
    digest = hashlib.sha256(b"gemma3n-gguf checkpoint content v1\0")
    names = ["config.json", "model.safetensors.index.json",
             *sorted(p.name for p in tiny_text_checkpoint.glob("*.safetensors"))]
    for name in names:
        file_digest = hashlib.sha256((tiny_text_checkpoint / name).read_bytes()).digest()
        digest.update(name.encode() + b"\0" + file_digest)
    assert checkpoint_content_hash(tiny_text_checkpoint, tmp_path / "memo.json") == digest.hexdigest()


def test_repeated_runs_reuse_the_memo_without_reading_the_files(tiny_text_checkpoint, tmp_path):
    memo_path = tmp_path / "memo.json"
    first = checkpoint_content_hash(tiny_text_checkpoint, memo_path)
    stored = json.loads(memo_path.read_text())["files"]
    shard = str((tiny_text_checkpoint / "model-00001-of-00008.safetensors").resolve())
    assert set(stored[shard]) == {"size", "mtime_ns", "ctime_ns", "inode", "sampled", "sha256"}

    memo = DigestMemo(memo_path)
    for path in sorted(tiny_text_checkpoint.glob("*.safetensors")):
        memo.file_sha256(path)
    assert memo.computed == 0
    assert checkpoint_content_hash(tiny_text_checkpoint, memo_path) == first


def test_an_in_place_edit_that_restores_size_and_mtime_is_seen(twins, tmp_path):
    base, finetune = twins
    memo_path = tmp_path / "memo.json"
    before = checkpoint_content_hash(finetune, memo_path)
    flip_one_tensor_byte(finetune)  # flips the same byte back: now equal to the base, same mtime
    assert checkpoint_content_hash(finetune, memo_path) == checkpoint_content_hash(base, tmp_path / "b.json")
    assert checkpoint_content_hash(finetune, memo_path) != before


def test_a_damaged_memo_is_ignored(tiny_text_checkpoint, tmp_path):
    memo_path = tmp_path / "memo.json"
    memo_path.write_text("{not json")
    expected = checkpoint_content_hash(tiny_text_checkpoint, tmp_path / "fresh.json")
    assert checkpoint_content_hash(tiny_text_checkpoint, memo_path) == expected
    assert json.loads(memo_path.read_text())["version"] == 1


def test_an_unwritable_memo_location_does_not_fail_the_run(tiny_text_checkpoint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    expected = checkpoint_content_hash(tiny_text_checkpoint, tmp_path / "memo.json")
    assert checkpoint_content_hash(tiny_text_checkpoint, blocker / "memo.json") == expected


def test_a_directory_without_weights_has_no_content_hash(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="has no \\*.safetensors weight files"):
        checkpoint_content_hash(tmp_path, tmp_path / "memo.json")


def test_a_version_1_baseline_keyed_on_the_sampled_identity_must_be_rewritten(tmp_path):
    from gemma3n_gguf.core.errors import BaselineError
    from gemma3n_gguf.validate.gate.baseline import load_baseline

    committed = json.loads((Path(__file__).parents[1] / "validate" / "baselines" / "tiny-text-Q8_0.json").read_text())
    protocol = {k: v for k, v in committed["protocol"].items() if k != "reference_sha256"}
    old = tmp_path / "baseline.json"
    old.write_text(json.dumps({**committed, "version": 1,
                               "protocol": {**protocol, "reference_fingerprint": "f215c24f" * 8}}))
    with pytest.raises(BaselineError) as caught:
        load_baseline(old)
    assert str(caught.value) == (f"baseline {old} has version 1; this gemma3n-gguf reads version 2: "
                                 "rewrite it with --write-baseline")
