"""The read side of ``wharf replay`` without I/O: one cursor per partition, and a merger that
hands out records in timestamp order across partitions and offset order within each.

Like h11, it never fetches: ``Merger.next_event()`` returns a record, or ``NeedFetch`` (the
caller reads those partitions from the collector and calls ``Merger.feed``), or ``IDLE``
(following, and every partition is at its end: poll, then ``Merger.update_ends``), or ``DONE``.

Order: within a partition, always offset order. Across partitions, the record with the smallest
timestamp among the partitions' next records goes first (ties: lower partition first). That
needs the next record of every unfinished partition, so a bounded replay fetches a partition as
soon as its buffer runs dry. When following, a partition with nothing new does not hold the
others back: its records join the merge when they arrive.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from wharf.api import Hit


class Cursor:
    """Reading position and limits of one partition.

    ``position`` is the next offset to ask for; ``stop`` the offset to stop before (``None``
    while following); ``stop_ts`` ends the partition at its first record stamped at or after
    it (``--to-time``); ``skip_ts`` drops records until the first one stamped at or after it
    (``--from-time`` on a collector that cannot look the offset up).
    """

    __slots__ = (
        "buffer",
        "exhausted",
        "in_heap",
        "known_end",
        "partition",
        "position",
        "skip_ts",
        "skipped",
        "stalled",
        "start",
        "stop",
        "stop_ts",
    )

    def __init__(
        self,
        partition: int,
        position: int,
        *,
        stop: int | None,
        known_end: int,
        stop_ts: int | None = None,
        skip_ts: int | None = None,
    ) -> None:
        self.partition = partition
        self.start = position
        self.position = position
        self.stop = stop
        self.stop_ts = stop_ts
        self.skip_ts = skip_ts
        self.known_end = known_end
        self.buffer: deque[Hit] = deque()
        self.exhausted = stop is not None and position >= stop
        self.in_heap = False
        self.skipped = 0
        self.stalled = False

    def __repr__(self) -> str:
        return (
            f"<Cursor p{self.partition} at {self.position} stop={self.stop} "
            f"end={self.known_end} buffered={len(self.buffer)}>"
        )

    @property
    def done(self) -> bool:
        """Nothing left to hand out, now or later."""
        return self.exhausted and not self.buffer

    def wants_fetch(self) -> bool:
        """Its buffer is empty and the collector has more for it."""
        if self.buffer or self.exhausted:
            return False
        limit = self.known_end if self.stop is None else min(self.stop, self.known_end)
        return self.position < limit

    def jump(self, offset: int) -> tuple[int, int] | None:
        """Move forward to ``offset`` (records before it were deleted by retention); the
        skipped range ``(from, to)`` if any."""
        if offset <= self.position:
            return None
        gap = (self.position, offset)
        self.position = offset if self.stop is None else min(offset, self.stop)
        if self.stop is not None and self.position >= self.stop:
            self.exhausted = True
        return gap

    def feed(self, records: Sequence[Hit], next_offset: int, end_offset: int) -> tuple[int, int]:
        """Take one consume answer; the range of offsets found missing (``(a, a)`` if none)."""
        self.known_end = max(self.known_end, end_offset)
        expected = self.position
        gap = (expected, expected)
        for rec in records:
            off = rec.offset
            if off < expected:
                continue  # the answer starts at the batch holding our offset
            if self.stop is not None and off >= self.stop:
                self.exhausted = True
                break
            if self.stop_ts is not None and rec.ts >= self.stop_ts:
                self.exhausted = True
                self.stop = off
                break
            if off > expected and gap[0] == gap[1]:
                gap = (expected, off)
            expected = off + 1
            if self.skip_ts is not None:
                if rec.ts < self.skip_ts:
                    self.skipped += 1
                    continue
                self.skip_ts = None
            self.buffer.append(rec)
        if self.exhausted:
            self.position = expected
            return gap
        new = max(expected, next_offset)
        if self.stop is not None:
            new = min(new, self.stop)
        if new <= self.position:
            # No progress although the partition claimed more: never spin on it. Bounded,
            # it ends here (the caller warns); following, it waits for the next poll.
            if self.stop is not None:
                self.exhausted = self.stalled = True
            else:
                self.known_end = self.position
            return gap
        self.position = new
        if self.stop is not None and self.position >= self.stop:
            self.exhausted = True
        return gap


class NeedFetch(NamedTuple):
    """Read these partitions from ``cursor.position`` and ``feed`` the answers."""

    cursors: list[Cursor]


@dataclass(frozen=True)
class _Signal:
    name: str


IDLE: Final = _Signal("idle")  # following, everything read: wait, poll the ends, try again
DONE: Final = _Signal("done")  # every partition finished
Event = Hit | NeedFetch | _Signal


@dataclass
class Merger:
    """Hands out the records of several cursors in order (see the module docstring)."""

    cursors: list[Cursor]
    _heap: list[tuple[int, int, Cursor]] = field(default_factory=list, init=False)
    _check: set[Cursor] = field(init=False)

    def __post_init__(self) -> None:
        self._check = set(self.cursors)

    def next_event(self) -> Event:
        """The next record, or what the caller must do first."""
        if self._check:
            wanted = [c for c in self._check if c.wants_fetch()]
            self._check = set(wanted)
            if wanted:
                return NeedFetch(sorted(wanted, key=lambda c: c.partition))
        if self._heap:
            _, _, cur = heapq.heappop(self._heap)
            rec = cur.buffer.popleft()
            if cur.buffer:
                heapq.heappush(self._heap, (cur.buffer[0].ts, cur.partition, cur))
            else:
                cur.in_heap = False
                self._check.add(cur)
            return rec
        if all(c.done for c in self.cursors):
            return DONE
        return IDLE

    def feed(
        self, cur: Cursor, records: Sequence[Hit], next_offset: int, end_offset: int
    ) -> tuple[int, int]:
        """Give ``cur`` a consume answer (see ``Cursor.feed``)."""
        gap = cur.feed(records, next_offset, end_offset)
        self._enqueue(cur)
        return gap

    def jump(self, cur: Cursor, offset: int) -> tuple[int, int] | None:
        """Move ``cur`` past records deleted by retention (see ``Cursor.jump``)."""
        gap = cur.jump(offset)
        self._check.add(cur)
        return gap

    def update_ends(self, ends: Mapping[int, int]) -> bool:
        """New end offsets from a poll; whether any partition has something new."""
        news = False
        for cur in self.cursors:
            end = ends.get(cur.partition)
            if end is not None and end > cur.known_end:
                cur.known_end = end
                news = True
            self._check.add(cur)
        return news

    def _enqueue(self, cur: Cursor) -> None:
        if cur.buffer and not cur.in_heap:
            cur.in_heap = True
            heapq.heappush(self._heap, (cur.buffer[0].ts, cur.partition, cur))
        if not cur.buffer:
            self._check.add(cur)
