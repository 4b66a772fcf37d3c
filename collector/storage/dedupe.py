"""Exactly-once: the high-water mark of every (producer, file) a partition has stored.

Every batch carries spans ``(file_id, start, end)``: the bytes of each source file it holds.
The partition remembers, per ``(producer_id, file_id)``, the largest ``end`` stored. A batch
whose spans all end at or below their marks is a resend and is acknowledged without being
stored again; a batch that straddles a mark is trimmed to the records at or past it.

The table is derived state: it is rebuilt from the meta sections of stored batches, starting
from the newest snapshot (written when a segment rolls, like Kafka's producer-state snapshots)
so a restart replays only the segments after it.

Invariant the shippers keep: per (producer, file), batches arrive in span order (one connection
carries them in order, and unacknowledged batches are resent in order before any new one).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from enum import Enum
from typing import Final

import msgspec

from wharf import batch as wb
from wharf.batch import Span

Key = tuple[bytes, str]
_SNAP_MAGIC: Final = b"WHHW"
_SNAP_HEAD: Final = struct.Struct(">4sBI")  # magic, version, crc of the body


class Verdict(Enum):
    """What to do with a batch, given its spans."""

    NEW = "new"  # nothing below a mark: store as is
    DUPLICATE = "duplicate"  # every span already stored: ack, store nothing
    PARTIAL = "partial"  # some records already stored: trim, then store


class HighWaterMarks:
    """``(producer_id, file_id) -> end`` with the dedupe decision for a batch."""

    __slots__ = ("marks",)

    def __init__(self, marks: dict[Key, int] | None = None) -> None:
        self.marks: dict[Key, int] = marks or {}

    def verdict(self, producer_id: bytes, spans: Iterable[Span]) -> Verdict:
        """Classify a batch from its producer and spans."""
        spans = list(spans)
        if not spans:
            return Verdict.NEW
        covered = 0
        fresh = 0
        for span in spans:
            mark = self.marks.get((producer_id, span.file_id))
            if mark is None or span.start >= mark:
                fresh += 1
            elif span.end <= mark:
                covered += 1
        if covered == len(spans):
            return Verdict.DUPLICATE
        if fresh == len(spans):
            return Verdict.NEW
        return Verdict.PARTIAL

    def mark_of(self, producer_id: bytes, file_id: str) -> int:
        """The stored end for a file, or -1."""
        return self.marks.get((producer_id, file_id), -1)

    def advance(self, producer_id: bytes, spans: Iterable[Span]) -> None:
        """Record that ``spans`` are stored."""
        for span in spans:
            key = (producer_id, span.file_id)
            if span.end > self.marks.get(key, -1):
                self.marks[key] = span.end

    def encode(self) -> bytes:
        """Snapshot bytes (checksummed)."""
        body = msgspec.msgpack.encode(
            [[pid, fid, end] for (pid, fid), end in sorted(self.marks.items())]
        )
        return _SNAP_HEAD.pack(_SNAP_MAGIC, 1, zlib.crc32(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> HighWaterMarks | None:
        """Parse a snapshot; ``None`` if damaged."""
        if len(data) < _SNAP_HEAD.size:
            return None
        magic, version, crc = _SNAP_HEAD.unpack_from(data)
        body = data[_SNAP_HEAD.size :]
        if magic != _SNAP_MAGIC or version != 1 or zlib.crc32(body) != crc:
            return None
        try:
            rows = msgspec.msgpack.decode(body, type=list[tuple[bytes, str, int]])
        except msgspec.DecodeError:
            return None
        return cls({(pid, fid): end for pid, fid, end in rows})


def trim(batch: wb.Batch, marks: HighWaterMarks) -> bytes | None:
    """``batch`` rebuilt without the records below their file's mark (``None``: nothing left)."""
    producer = batch.header.producer_id
    keep = [
        r
        for r in batch.records()
        if not r.file_id or r.offset >= marks.mark_of(producer, r.file_id)
    ]
    if not keep:
        return None
    spans = [
        wb.Span(s.file_id, max(s.start, marks.mark_of(producer, s.file_id)), s.end)
        for s in batch.spans
        if s.end > marks.mark_of(producer, s.file_id)
    ]
    return wb.build(keep, producer_id=producer, producer_seq=batch.header.producer_seq, spans=spans)
