"""Fixed-width columns of a batch: little-endian arrays, byte-shuffled, and zigzag deltas.

Shared by the record columns (``wharf.batch``) and the columnar fields section
(``wharf._fields``). Every function here works on whole arrays with C-level operations
(``array``, ``map`` over ``operator`` functions, slicing); none has a Python loop per value on
its common path, so a column costs nanoseconds per record.
"""

from __future__ import annotations

import operator
import sys
from array import array
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Final

from wharf.errors import CorruptBatch

_LITTLE: Final = sys.byteorder == "little"
_U64: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)
_I64_END: Final = 1 << 63


def shuffle(raw: bytes, width: int) -> bytes:
    """Byte-shuffle ``raw`` (values of ``width`` bytes): all first bytes, then all second
    bytes... (see ``le``)."""
    if width == 1:
        return raw
    return b"".join(raw[k::width] for k in range(width))


def le(typecode: str, values: Iterable[int] | Iterable[float]) -> bytes:
    """Little-endian array bytes, byte-shuffled: all first bytes, then all second bytes...

    Shuffling puts the mostly-zero high bytes of small numbers next to each other, so zstd
    squeezes a column of lengths or deltas to a fraction of a byte per record (as Blosc and
    Parquet's byte-stream-split do).
    """
    arr = values if isinstance(values, array) else array(typecode, values)
    if arr.typecode != typecode or not _LITTLE:
        arr = array(typecode, arr)
    if not _LITTLE:
        arr.byteswap()
    return shuffle(arr.tobytes(), arr.itemsize)


def from_le(typecode: str, data: bytes, count: int, what: str) -> array[int]:
    """The array ``le`` wrote (``count`` values), or ``CorruptBatch`` naming column ``what``."""
    arr: array[int] = array(typecode)
    width = arr.itemsize
    if len(data) != count * width:
        raise CorruptBatch(f"column {what} has {len(data)} bytes, expected {count * width}")
    if width > 1 and count:
        raw = bytearray(len(data))
        for k in range(width):
            raw[k::width] = data[k * count : (k + 1) * count]
        data = bytes(raw)
    arr.frombytes(data)
    if not _LITTLE:
        arr.byteswap()
    return arr


def from_le_floats(data: bytes, count: int, what: str) -> array[float]:
    """``from_le`` for float64 columns."""
    arr: array[float] = array("d")
    if len(data) != count * 8:
        raise CorruptBatch(f"column {what} has {len(data)} bytes, expected {count * 8}")
    if count:
        raw = bytearray(len(data))
        for k in range(8):
            raw[k::8] = data[k * count : (k + 1) * count]
        arr.frombytes(bytes(raw))
    if not _LITTLE:
        arr.byteswap()
    return arr


def zigzag(deltas: Sequence[int]) -> list[int]:
    """Zigzag codes (uint64) of 64-bit deltas: 0, -1, 1, -2... become 0, 1, 2, 3...

    Deltas outside the int64 range wrap first (two's complement), so any pair of values in
    [-2**63, 2**64) round-trips.
    """
    if not deltas:
        return []
    if min(deltas) >= _I64_MIN and max(deltas) < _I64_END:
        # (d << 1) ^ (d >> 63) for an int64 d, in three C-level passes.
        return list(
            map(
                operator.xor,
                map(operator.lshift, deltas, repeat(1)),
                map(operator.rshift, deltas, repeat(63)),
            )
        )
    out: list[int] = []
    for raw in deltas:
        d = ((raw + _I64_END) & _U64) - _I64_END  # wrap into int64
        out.append(((d << 1) ^ (d >> 63)) & _U64)
    return out


def zigzag_deltas(values: Sequence[int], first: int) -> list[int]:
    """Zigzag codes of the differences from the previous value (the first from ``first``):
    ascending timestamps or offsets become small, repetitive numbers."""
    if not values:
        return []
    return zigzag(list(map(operator.sub, values, [first, *values[:-1]])))


def unzigzag(codes: Iterable[int]) -> list[int]:
    """The int64 deltas of zigzag ``codes``."""
    return [(z >> 1) ^ -(z & 1) for z in codes]


def undo_zigzag_deltas(codes: Iterable[int], first: int) -> list[int]:
    """The values ``zigzag_deltas(values, first)`` encoded (wrapping like int64 arithmetic)."""
    out: list[int] = []
    prev = first
    for z in codes:
        prev = ((prev + ((z >> 1) ^ -(z & 1)) + _I64_END) & _U64) - _I64_END
        out.append(prev)
    return out
