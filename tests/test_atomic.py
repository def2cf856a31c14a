from __future__ import annotations

import pytest

from gemma3n_gguf.core.atomic import atomic_path, write_text_atomically
from gemma3n_gguf.core.errors import ConversionError


def test_success_replaces_destination(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    write_text_atomically(dest, "new")
    assert dest.read_text() == "new"
    assert list(tmp_path.iterdir()) == [dest]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_nothing_behind(tmp_path, error):
    dest = tmp_path / "out.bin"
    with pytest.raises(error), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise error()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_parent_is_a_conversion_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConversionError, match="cannot write"), atomic_path(blocker / "out.gguf"):
        pass


def test_output_gets_normal_permissions(tmp_path):
    dest = tmp_path / "out.txt"
    write_text_atomically(dest, "x")
    assert dest.stat().st_mode & 0o044 == 0o044  # group/other readable under the usual umask
