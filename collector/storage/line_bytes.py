"""Exact raw line bytes of a partition (for the compression ratio), from batch headers.

Every batch header carries ``lines_ulen`` (the lines joined by newlines), so a partition's raw
size is the sum over its batches of ``lines_ulen + 1``, the bytes the lines took in their files,
newline included. Headers are read once per batch (102 bytes each) and the sums cached per
segment: sealed segments never change, the active one only grows.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable

from collector.storage.segment import Segment
from wharf import batch as wb
from wharf.errors import CorruptBatch


class LineBytes:
    """Exact raw line bytes per partition, from batch headers, cached per segment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # segment -> (index entries summed, their line bytes)
        self._sums: weakref.WeakKeyDictionary[Segment, tuple[int, int]] = (
            weakref.WeakKeyDictionary()
        )

    def of_segment(self, seg: Segment) -> int:
        """Line bytes of the batches the segment's index lists now."""
        with self._lock:
            done, total = self._sums.get(seg, (0, 0))
        idx = seg.index
        n = len(idx)
        for e in range(done, n):
            try:
                header = wb.read_header(seg.pread(idx.position[e], wb.HEADER_SIZE))
            except (CorruptBatch, OSError):  # counted as empty: search reports damage itself
                continue
            total += header.lines_ulen + 1
        with self._lock:
            if self._sums.get(seg, (0, 0))[0] < n:
                self._sums[seg] = (n, total)
        return total

    def of_segments(self, segments: Iterable[Segment]) -> int:
        """Line bytes of every batch of ``segments``."""
        return sum(self.of_segment(seg) for seg in segments)
