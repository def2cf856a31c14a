"""Ways to damage a file: overwrite header fields with telling values, flip bytes, cut or extend it."""

from __future__ import annotations

from hypothesis import strategies as st

# Boundary values for integer fields: zero, one, off-by-one around alignments, sign bits, maxima.
TELLING_INTS = [0, 1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 63, 64, 65, 255, 256, 2**15, 2**16 - 1, 2**31 - 1, 2**31,
                2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 1024**3, 1024**3 + 1]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def overwrite_field(draw, data: bytes, fields: list[tuple[int, int]]) -> bytes:
    """One header field (at ``fields``' offset and size) set to a telling value or a delta of its own."""
    offset, size = draw(st.sampled_from(fields))
    current = int.from_bytes(data[offset:offset + size], "little")
    value = draw(st.sampled_from(TELLING_INTS) | st.integers(-64, 64).map(lambda d: current + d))
    raw = (value % 2 ** (8 * size)).to_bytes(size, "little")
    return data[:offset] + raw + data[offset + size:]


@st.composite
def flip_bytes(draw, data: bytes, limit: int) -> bytes:
    """A few bytes among the first ``limit`` set to random values."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        out[draw(st.integers(0, min(limit, len(out)) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@st.composite
def cut_or_extend(draw, data: bytes) -> bytes:
    if draw(st.booleans()):
        return data[:draw(st.integers(0, len(data) - 1))]
    return data + draw(st.binary(min_size=1, max_size=40))


def damaged(data: bytes, fields: list[tuple[int, int]], header_end: int):
    return st.one_of(overwrite_field(data, fields), flip_bytes(data, header_end), cut_or_extend(data))
