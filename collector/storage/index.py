"""A segment's index: one entry per batch (offset, position, time range, append time).

Batches are large (tens to hundreds of KiB), so one entry per batch is already sparse in
records while making every lookup exact: find the batch holding an offset, or skip batches
outside a time range, without touching the segment file. Kafka keeps two files (offset and
time); one file with both columns does the same job with one write.

Index files are caches. The active segment's index lives in memory and is rebuilt from the
segment when the store opens (recovery scans that segment anyway). A sealed segment's index is
written once, when the segment rolls, through a temp file and a rename, with a checksum; a
missing, short, or mismatching file is rebuilt from the segment on open.

File layout, big-endian::

    magic   4s   b"WHIX"
    version B    1
    pad     3x
    count   I    number of entries
    covered Q    segment bytes the entries describe (must equal the segment's size)
    crc     I    CRC-32 of the entries
    entries count x (rel_offset I, position I, count I, min_ts q, max_ts q, append_ms q)
"""

from __future__ import annotations

import struct
import zlib
from array import array
from bisect import bisect_right
from typing import Final

_MAGIC: Final = b"WHIX"
_HEAD: Final = struct.Struct(">4sB3xIQI")
_ENTRY: Final = struct.Struct(">IIIqqq")


class SegmentIndex:
    """Columns of per-batch entries for one segment, in offset order."""

    __slots__ = ("append_ms", "base", "count", "max_ts", "min_ts", "position", "rel_offset")

    def __init__(self, base: int) -> None:
        self.base = base
        self.rel_offset: array[int] = array("I")
        self.position: array[int] = array("I")
        self.count: array[int] = array("I")
        self.min_ts: array[int] = array("q")
        self.max_ts: array[int] = array("q")
        self.append_ms: array[int] = array("q")

    def __len__(self) -> int:
        return len(self.rel_offset)

    def add(
        self, offset: int, position: int, count: int, min_ts: int, max_ts: int, append_ms: int
    ) -> None:
        """Record one batch appended at ``position``."""
        self.rel_offset.append(offset - self.base)
        self.position.append(position)
        self.count.append(count)
        self.min_ts.append(min_ts)
        self.max_ts.append(max_ts)
        self.append_ms.append(append_ms)

    def truncate(self, entries: int) -> None:
        """Keep the first ``entries`` entries."""
        for col in (
            self.rel_offset, self.position, self.count, self.min_ts, self.max_ts, self.append_ms
        ):  # fmt: skip
            del col[entries:]

    def find(self, offset: int) -> int:
        """Entry holding ``offset`` (the last entry whose first offset is <= it), or -1."""
        return bisect_right(self.rel_offset, offset - self.base) - 1

    def next_offset(self) -> int:
        """Offset after the last indexed batch (``base`` when empty)."""
        if not self.rel_offset:
            return self.base
        return self.base + self.rel_offset[-1] + self.count[-1]

    def encode(self, covered: int) -> bytes:
        """The index file's bytes for a segment of ``covered`` bytes."""
        body = b"".join(
            _ENTRY.pack(r, p, c, lo, hi, ap)
            for r, p, c, lo, hi, ap in zip(
                self.rel_offset,
                self.position,
                self.count,
                self.min_ts,
                self.max_ts,
                self.append_ms,
                strict=True,
            )
        )
        return _HEAD.pack(_MAGIC, 1, len(self), covered, zlib.crc32(body)) + body

    @classmethod
    def decode(cls, base: int, data: bytes, covered: int) -> SegmentIndex | None:
        """Parse an index file; ``None`` if it is damaged or describes other segment bytes."""
        if len(data) < _HEAD.size:
            return None
        magic, version, count, file_covered, crc = _HEAD.unpack_from(data)
        body = memoryview(data)[_HEAD.size :]
        if (
            magic != _MAGIC
            or version != 1
            or file_covered != covered
            or len(body) != count * _ENTRY.size
            or zlib.crc32(body) != crc
        ):
            return None
        index = cls(base)
        prev = -1
        for r, p, c, lo, hi, ap in _ENTRY.iter_unpack(body):
            if p <= prev or (prev < 0 and p != 0) or c == 0:
                return None
            index.add(base + r, p, c, lo, hi, ap)
            prev = p
        return index
