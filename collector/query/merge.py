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

``iter_groups`` is the same walk for grep's context lines (``-A/-B/-C``): hits grouped with
their neighbours of the same host and source, in that source's read order (see its section).
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple, Protocol

from collector.filters.query import Query
from collector.storage import Partition, Store
from collector.storage.partition import BatchRef
from collector.storage.scan import ScanStats, Watch, scan
from wharf import batch as wb
from wharf.errors import CorruptBatch, OffsetOutOfRange
from wharf.record import Record

# A window (the unit of reading) holds at most this many batches or records.
WINDOW_BATCHES: Final = 8
WINDOW_RECORDS: Final = 65_536
# Hits held back waiting for the watermark, at most (see the module docstring): about 20 MB of
# records with their fields, per search.
MAX_BUFFERED: Final = 20_000


class Predicate(Protocol):
    """A filter applied to each record a scan returns (``where``, levels)."""

    def matches(self, record: Record) -> bool:
        """Whether ``record`` is kept."""
        ...


class Hit(NamedTuple):
    """A matching record and where it lives."""

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
        part: Partition,
        topic: str,
        rank: int,
        query: Query,
        end: int,
        desc: bool,
    ) -> None:
        self.part, self.topic, self.rank, self.query, self.desc = part, topic, rank, query, desc
        lo, hi = query.ts_bounds()
        refs = [r for r in part.refs(min_ts=lo, max_ts=hi) if r.base_offset < end]
        if desc:
            refs.reverse()
        groups: list[list[BatchRef]] = []
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
                _Window(first.base_offset, min(end, last.base_offset + last.count), bound)
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
    ) -> list[Hit]:
        """Read the next window: its hits, in no particular order."""
        w = self._windows[self._next]
        self._next += 1
        try:
            found = scan(
                self.part,
                self.query,
                from_offset=w.start,
                to_offset=w.stop,
                stats=stats,
                watch=Watch(cancel, tick),
            )
            return [
                Hit(h.record.ts, self.rank, h.partition, h.offset, self.topic, h.record)
                for h in found
                if where is None or where.matches(h.record)
            ]
        except OffsetOutOfRange:  # retention deleted the window meanwhile
            return []


def iter_hits(
    store: Store,
    topics: list[str],
    query: Query,
    where: Predicate | None,
    *,
    desc: bool,
    cancel: threading.Event,
    stats: ScanStats,
    ends: dict[tuple[str, int], int] | None = None,
    tick: Callable[[], None] | None = None,
) -> Iterator[Hit]:
    """Every hit over all partitions of ``topics``, oldest first (newest first when ``desc``).

    Each partition is read up to ``ends[(topic, p)]``, by default its durable end when the
    search starts: a search does not chase new appends (that is what tail is for).
    """
    cursors = []
    for rank, topic in enumerate(topics):
        for part in store.partitions(topic):
            end = part.durable_offset if ends is None else ends.get((topic, part.number), 0)
            cursors.append(_Cursor(part, topic, rank, query, end, desc))
    sign = -1 if desc else 1
    heap: list[tuple[tuple[int, int, int, int], Hit]] = []
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


# -- context lines (grep -A/-B/-C) -------------------------------------------------------------
#
# grep prints context within a file; a partition holds many files (sources) of one or more
# hosts, interleaved as their batches arrived. So context is taken among the records of the hit's
# own host and source, in offset order (the order that source's lines were read), and groups are
# built per (host, source) exactly as grep builds them per file: a hit's B records before and A
# after, groups joined when no record of that source lies between them, ``--`` between the rest.
# A partition's groups come out in offset order; partitions are merged by the time of each
# group's first match, so for one source the output is grep's, line for line.

# Context is looked for at most this many batches away from a hit, either way: in a partition
# shared by many busy sources a quiet one's neighbours may be far apart, and finding a few lines
# of context must stay a small read. Beyond it the context is shorter and groups do not join.
CONTEXT_MAX_BATCHES: Final = 64
# Decoded batches kept per partition while building context: hits cluster, so their neighbours
# are read once.
_CONTEXT_CACHE: Final = 4
# Context records are materialized this many at a time (decoding any record of a batch costs a
# pass over its columns, so one pass serves a run of neighbours), and at most this many runs
# are kept per cached batch: with _CONTEXT_CACHE, at most 4 x 32 x 256 = 32,768 records.
_RUN: Final = 256
_RUNS_KEPT: Final = 32
# Finished groups held back so a partition's groups leave in offset order while an earlier one
# still waits for its after-context, at most; past that they leave early.
MAX_PENDING_GROUPS: Final = 10_000

Key = tuple[str, str]  # (host, source)


class Line(NamedTuple):
    """One record of a context group: a match, or a context line around one."""

    offset: int
    record: Record
    match: bool


class Group(NamedTuple):
    """Adjacent records of one source with at least one match: grep's block between ``--``."""

    ts: int  # the first match's time: groups of different partitions merge on it
    topic_rank: int
    partition: int
    first: int  # offset of the first line
    topic: str
    lines: list[Line]


class _Decoded(NamedTuple):
    ref: BatchRef
    batch: wb.Batch
    keys: dict[Key, list[int]]  # record indexes per (host, source), filled on demand
    runs: OrderedDict[int, list[Record]]  # materialized records, _RUN at a time


class _Neighbours:
    """One partition's records by offset, for context: the records of one (host, source) before
    or after an offset, a few decoded batches cached."""

    def __init__(self, part: Partition, end: int, stats: ScanStats) -> None:
        self.part, self.end, self.stats = part, end, stats
        self._cache: OrderedDict[int, _Decoded | None] = OrderedDict()

    def _at(self, offset: int) -> _Decoded | None:
        """The decoded batch holding ``offset`` (``None``: gone, damaged or out of range)."""
        if offset < self.part.start_offset or offset >= self.end:
            return None
        try:
            ref = next(self.part.refs(offset), None)
        except OffsetOutOfRange:  # retention deleted it meanwhile
            return None
        if ref is None:
            return None
        if ref.base_offset in self._cache:
            self._cache.move_to_end(ref.base_offset)
            return self._cache[ref.base_offset]
        decoded: _Decoded | None
        try:
            decoded = _Decoded(ref, ref.segment.batch_at(ref.entry), {}, OrderedDict())
            self.stats.bytes_read += ref.segment.entry_bytes(ref.entry)[1]
        except CorruptBatch as exc:
            self.stats.errors.append(exc)
            decoded = None
        self._cache[ref.base_offset] = decoded
        if len(self._cache) > _CONTEXT_CACHE:
            self._cache.popitem(last=False)
        return decoded

    def _indexes(self, d: _Decoded, key: Key) -> list[int]:
        found = d.keys.get(key)
        if found is None:
            b = d.batch
            host, source = key
            if host not in b.hosts or source not in b.sources:
                found = []
            elif len(b.hosts) == 1 and len(b.sources) == 1:
                found = list(range(len(b)))
            else:
                h, s = b.hosts.index(host), b.sources.index(source)
                host_of, source_of = b.host_indexes(), b.source_indexes()
                found = [i for i in range(len(b)) if host_of[i] == h and source_of[i] == s]
            d.keys[key] = found
        return found

    def before(self, key: Key, offset: int, n: int, floor: int) -> list[tuple[int, Record]]:
        """Up to ``n`` records of ``key`` before ``offset`` and at or after ``floor``, oldest
        first."""
        picked: list[tuple[_Decoded, list[int]]] = []
        found, pos, looked = 0, offset - 1, 0
        while found < n and pos >= floor and looked < CONTEXT_MAX_BATCHES:
            d = self._at(pos)
            looked += 1
            if d is None:
                break
            base = d.ref.base_offset
            mine = self._indexes(d, key)
            hi = bisect_right(mine, pos - base)
            lo = max(bisect_left(mine, floor - base), hi - (n - found))
            idx = mine[lo:hi]
            if idx:
                picked.append((d, idx))
                found += len(idx)
            pos = base - 1
        return [item for d, idx in reversed(picked) for item in self._records(d, idx)]

    def after(
        self, key: Key, offset: int, n: int, ceiling: int, *, want: bool = True
    ) -> tuple[list[tuple[int, Record]], int]:
        """Up to ``n`` records of ``key`` after ``offset`` and before ``ceiling`` (records only
        when ``want``, else empty), and the offset up to which every record of ``key`` is known:
        just past the ``n``-th, the ceiling, or where the look stopped."""
        picked: list[tuple[_Decoded, list[int]]] = []
        found, pos, looked = 0, offset + 1, 0
        ceiling = min(ceiling, self.end)
        while found < n and pos < ceiling:
            if looked >= CONTEXT_MAX_BATCHES:
                return self._all(picked, want), pos
            d = self._at(pos)
            looked += 1
            if d is None:
                return self._all(picked, want), pos
            base = d.ref.base_offset
            mine = self._indexes(d, key)
            lo = bisect_left(mine, pos - base)
            idx = mine[lo : min(bisect_left(mine, ceiling - base), lo + n - found)]
            if idx:
                picked.append((d, idx))
                found += len(idx)
                if found == n:
                    return self._all(picked, want), base + idx[-1] + 1
            pos = base + d.ref.count
        return self._all(picked, want), ceiling

    def _all(
        self, picked: list[tuple[_Decoded, list[int]]], want: bool
    ) -> list[tuple[int, Record]]:
        return [item for d, idx in picked for item in self._records(d, idx)] if want else []

    def _records(self, d: _Decoded, idx: list[int]) -> list[tuple[int, Record]]:
        out = []
        for i in idx:
            run = d.runs.get(i // _RUN)
            if run is None:
                start = i - i % _RUN
                try:
                    run = d.batch.records(range(start, min(start + _RUN, len(d.batch))))
                except CorruptBatch as exc:
                    self.stats.errors.append(exc)
                    return []
                d.runs[i // _RUN] = run
                if len(d.runs) > _RUNS_KEPT:
                    d.runs.popitem(last=False)
            out.append((d.ref.base_offset + i, run[i % _RUN]))
        return out


class _Open:
    """A group still growing: more matches of its source may join it."""

    __slots__ = ("close_at", "last_hit", "lines", "ts")

    def __init__(self, ts: int, lines: list[Line]) -> None:
        self.ts = ts
        self.lines = lines
        self.last_hit = -1
        self.close_at = 0  # a later match at or past this offset starts a new group


def _partition_groups(
    part: Partition,
    topic: str,
    rank: int,
    query: Query,
    where: Predicate | None,
    end: int,
    before: int,
    after: int,
    cancel: threading.Event,
    stats: ScanStats,
    tick: Callable[[], None] | None,
) -> Iterator[Group]:
    """One partition's context groups in offset order (see the section comment)."""
    near = _Neighbours(part, end, stats)
    growing: dict[Key, _Open] = {}
    printed: dict[Key, int] = {}  # last offset printed per source: context never repeats a line
    finished: list[tuple[int, Group]] = []  # a heap on the first offset

    def close(key: Key) -> None:
        g = growing.pop(key)
        tail, _ = near.after(key, g.last_hit, after, end)
        g.lines.extend(Line(o, r, False) for o, r in tail)
        printed[key] = g.lines[-1].offset
        first = g.lines[0].offset
        heapq.heappush(finished, (first, Group(g.ts, rank, part.number, first, topic, g.lines)))

    def ready(everything: bool) -> Iterator[Group]:
        oldest_open = min((g.lines[0].offset for g in growing.values()), default=None)
        while finished and (
            everything
            or oldest_open is None
            or finished[0][0] < oldest_open
            or len(finished) > MAX_PENDING_GROUPS
        ):
            yield heapq.heappop(finished)[1]

    for hit in scan(part, query, to_offset=end, stats=stats, watch=Watch(cancel, tick)):
        rec = hit.record
        if where is not None and not where.matches(rec):
            continue
        o, key = hit.offset, (rec.host, rec.source)
        for k in [k for k, g in growing.items() if g.close_at <= o]:
            close(k)
        g = growing.get(key)
        if g is not None:  # close enough to the previous match: everything between is shown
            between, _ = near.after(key, g.last_hit, before + after, o)
            g.lines.extend(Line(off, r, False) for off, r in between)
        else:
            floor = max(printed.get(key, -1) + 1, part.start_offset)
            lead = near.before(key, o, before, floor)
            g = growing[key] = _Open(rec.ts, [Line(off, r, False) for off, r in lead])
        g.lines.append(Line(o, rec, True))
        g.last_hit = o
        _, g.close_at = near.after(key, o, before + after + 1, end, want=False)
        yield from ready(False)
    if cancel.is_set():
        return
    for k in list(growing):
        close(k)
    yield from ready(True)


def iter_groups(
    store: Store,
    topics: list[str],
    query: Query,
    where: Predicate | None,
    *,
    before: int,
    after: int,
    cancel: threading.Event,
    stats: ScanStats,
    tick: Callable[[], None] | None = None,
) -> Iterator[Group]:
    """Context groups of every partition of ``topics``, merged by the time of their first
    match (each partition's own groups keep their offset order)."""
    streams = [
        _partition_groups(
            part, topic, rank, query, where, part.durable_offset, before, after, cancel, stats, tick
        )
        for rank, topic in enumerate(topics)
        for part in store.partitions(topic)
    ]
    return heapq.merge(*streams, key=lambda g: (g.ts, g.topic_rank, g.partition, g.first))
