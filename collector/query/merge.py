"""Hits of many partitions in exact time order, read a window of batches at a time.

A partition's records are in offset order, which is not time order: a web server logs a request
when it ends with the time it began, so neighbouring lines are often tens of seconds apart the
wrong way. Merging the partitions' streams with ``heapq.merge`` would then be only roughly
sorted. Instead every loaded hit goes into one heap, and a hit leaves it only once no unread
batch of any partition can hold an earlier record: the index gives every batch's time range
without reading it, so each partition knows a lower bound (its *watermark*) for all it has not
read yet. The partition with the lowest watermark is read next. Newest-first is the mirror image.

Memory is the hits whose time lies beyond the watermark: about one window per partition for
real logs. Should batches overlap wildly in time, at most ``MAX_BUFFERED`` hits are held and the
oldest are let out early (order then degrades to "sorted within that many records").

``collector.query.context`` is the same walk for grep's context lines (``-A/-B/-C``).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple

from collector.filters.query import Predicate, Query
from collector.storage.interface import BatchSpan, PartitionReader, Storage
from collector.storage.scan import ScanStats, Watch
from wharf.errors import OffsetOutOfRange
from wharf.record import Record

# A window (the unit of reading) holds at most this many batches or records.
WINDOW_BATCHES: Final = 8
WINDOW_RECORDS: Final = 65_536
# Hits held back waiting for the watermark, at most (see the module docstring): about 20 MB of
# records with their fields, per search.
MAX_BUFFERED: Final = 20_000


class MergedHit(NamedTuple):
    """A matching record, its topic, and the keys that order it in the merge."""

    ts: int
    topic_rank: int  # the topic's position in the request: orders equal times deterministically
    partition: int
    offset: int
    topic: str
    record: Record


class _Window(NamedTuple):
    start: int  # offsets [start, stop)
    stop: int
    bound: int  # lowest min_ts (highest max_ts when newest-first) of this and later windows


class _Cursor:
    """One partition, read window by window in the direction of the merge."""

    def __init__(
        self,
        part: PartitionReader,
        topic: str,
        rank: int,
        query: Query,
        end: int,
        desc: bool,
        start: int | None = None,
    ) -> None:
        self.part, self.topic, self.rank, self.query, self.desc = part, topic, rank, query, desc
        lo, hi = query.ts_bounds()
        refs = [r for r in part.refs(start, min_ts=lo, max_ts=hi) if r.base_offset < end]
        if desc:
            refs.reverse()
        groups: list[list[BatchSpan]] = []
        for ref in refs:
            g = groups[-1] if groups else None
            if g is None or len(g) >= WINDOW_BATCHES or sum(r.count for r in g) >= WINDOW_RECORDS:
                groups.append([ref])
            else:
                g.append(ref)
        windows: list[_Window] = []
        bound: int | None = None
        for g in reversed(groups):  # bounds accumulate from the last window read backwards
            edge = max(r.max_ts for r in g) if desc else min(r.min_ts for r in g)
            bound = edge if bound is None else (max(bound, edge) if desc else min(bound, edge))
            first, last = (g[-1], g[0]) if desc else (g[0], g[-1])
            windows.append(
                _Window(
                    max(first.base_offset, start or 0),
                    min(end, last.base_offset + last.count),
                    bound,
                )
            )
        windows.reverse()
        self._windows = windows
        self._next = 0

    @property
    def bound(self) -> int | None:
        """The watermark: no unread record is older (newer, when ``desc``); ``None`` at the end."""
        return self._windows[self._next].bound if self._next < len(self._windows) else None

    def load(
        self,
        where: Predicate | None,
        cancel: threading.Event,
        stats: ScanStats,
        tick: Callable[[], None] | None = None,
    ) -> list[MergedHit]:
        """Read the next window: its hits, in no particular order."""
        w = self._windows[self._next]
        self._next += 1
        try:
            found = self.part.scan(
                self.query,
                predicate=where,
                from_offset=w.start,
                to_offset=w.stop,
                stats=stats,
                watch=Watch(cancel, tick),
            )
            return [
                MergedHit(h.record.ts, self.rank, h.partition, h.offset, self.topic, h.record)
                for h in found
            ]
        except OffsetOutOfRange:  # retention deleted the window meanwhile
            return []


def iter_hits(
    store: Storage,
    topics: list[str],
    query: Query,
    where: Predicate | None,
    *,
    desc: bool,
    cancel: threading.Event,
    stats: ScanStats,
    ends: dict[tuple[str, int], int] | None = None,
    starts: dict[tuple[str, int], int] | None = None,
    tick: Callable[[], None] | None = None,
) -> Iterator[MergedHit]:
    """Every hit over all partitions of ``topics``, oldest first (newest first when ``desc``).

    Each partition is read up to ``ends[(topic, p)]``, by default its durable end when the
    search starts: a search does not chase new appends (that is what tail is for); and from
    ``starts[(topic, p)]`` when given (a page cursor; within the partition's offsets).
    """
    cursors = []
    for rank, topic in enumerate(topics):
        for part in store.partitions(topic):
            end = part.durable_offset if ends is None else ends.get((topic, part.number), 0)
            start = None if starts is None else starts.get((topic, part.number))
            cursors.append(_Cursor(part, topic, rank, query, end, desc, start))
    sign = -1 if desc else 1
    heap: list[tuple[tuple[int, int, int, int], MergedHit]] = []
    while not cancel.is_set():
        live = [(c.bound, i) for i, c in enumerate(cursors) if c.bound is not None]
        mark = (max if desc else min)(live)[0] if live else None
        while heap and (
            mark is None
            or len(heap) > MAX_BUFFERED
            or (heap[0][1].ts > mark if desc else heap[0][1].ts < mark)
        ):
            yield heapq.heappop(heap)[1]
        if mark is None:
            return
        nxt = cursors[(max if desc else min)(live)[1]]
        for h in nxt.load(where, cancel, stats, tick):
            key = (sign * h.ts, sign * h.topic_rank, sign * h.partition, sign * h.offset)
            heapq.heappush(heap, (key, h))
