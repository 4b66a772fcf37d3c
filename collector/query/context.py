"""Context lines (grep's ``-A/-B/-C``) over every partition of a search.

grep prints context within a file; a partition holds many files (sources) of one or more
hosts, interleaved as their batches arrived. So context is taken among the records of the hit's
own host and source, in offset order (the order that source's lines were read), and groups are
built per (host, source) exactly as grep builds them per file: a hit's B records before and A
after, groups joined when no record of that source lies between them, ``--`` between the rest.
A partition's groups come out in offset order; partitions are merged by the time of each
group's first match, so for one source the output is grep's, line for line.

``around`` is the same look for one record named by its offset (``GET .../context``: a record's
neighbours in the web console), through the same ``Neighbours``.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple

from collector.filters.query import Predicate, Query
from collector.storage.interface import PartitionReader, Storage
from collector.storage.scan import ScanStats, Watch
from wharf import batch as wb
from wharf.errors import CorruptBatch, OffsetOutOfRange
from wharf.record import Record

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
    base: int  # offset of the batch's first record
    batch: wb.Batch
    keys: dict[Key, list[int]]  # record indexes per (host, source), filled on demand
    runs: OrderedDict[int, list[Record]]  # materialized records, _RUN at a time


class Neighbours:
    """One partition's records by offset, for context: the records of one (host, source) before
    or after an offset, a few decoded batches cached."""

    def __init__(self, part: PartitionReader, end: int, stats: ScanStats) -> None:
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
            batches = self.part.read(ref.base_offset, max_bytes=1)
        except OffsetOutOfRange:
            return None
        except CorruptBatch as exc:
            self.stats.errors.append(exc)
            batches = []
        if batches and batches[0].header.base_offset == ref.base_offset:
            decoded = _Decoded(ref.base_offset, batches[0], {}, OrderedDict())
            self.stats.bytes_read += ref.stored_bytes
        else:
            decoded = None
        self._cache[ref.base_offset] = decoded
        if len(self._cache) > _CONTEXT_CACHE:
            self._cache.popitem(last=False)
        return decoded

    def record(self, offset: int) -> Record | None:
        """The record at ``offset`` (``None``: outside the partition, deleted by retention
        meanwhile, or in a damaged batch, which ``stats.errors`` then holds)."""
        d = self._at(offset)
        if d is None or not 0 <= offset - d.base < len(d.batch):
            return None
        found = self._records(d, [offset - d.base])
        return found[0][1] if found else None

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
            base = d.base
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
            base = d.base
            mine = self._indexes(d, key)
            lo = bisect_left(mine, pos - base)
            idx = mine[lo : min(bisect_left(mine, ceiling - base), lo + n - found)]
            if idx:
                picked.append((d, idx))
                found += len(idx)
                if found == n:
                    return self._all(picked, want), base + idx[-1] + 1
            pos = base + len(d.batch)
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
            out.append((d.base + i, run[i % _RUN]))
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
    part: PartitionReader,
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
    near = Neighbours(part, end, stats)
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

    watch = Watch(cancel, tick)
    for hit in part.scan(query, predicate=where, to_offset=end, stats=stats, watch=watch):
        rec = hit.record
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
    store: Storage,
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


def around(
    part: PartitionReader, offset: int, before: int, after: int, stats: ScanStats
) -> list[Line]:
    """The record at ``offset`` (``match`` true) with up to ``before`` records of its host and
    source before it and ``after`` after it, in offset order, looked for as far as grep's
    context is (``CONTEXT_MAX_BATCHES``). ``OffsetOutOfRange`` when the partition does not hold
    ``offset``; the batch's ``CorruptBatch`` when it is damaged."""
    start, end = part.start_offset, part.durable_offset
    if not start <= offset < end:
        why = "deleted by retention" if offset < start else "past the end"
        raise OffsetOutOfRange(
            f"offset {offset} of partition {part.number} is {why}: it holds {start}..{end - 1}"
            if end > start
            else f"offset {offset} of partition {part.number}: the partition is empty"
        )
    near = Neighbours(part, end, stats)
    rec = near.record(offset)
    if rec is None:
        if stats.errors:
            raise stats.errors[-1]
        raise OffsetOutOfRange(f"offset {offset} of partition {part.number} is gone")
    key = (rec.host, rec.source)
    lead = near.before(key, offset, before, start)
    tail, _ = near.after(key, offset, after, end)
    return [
        *(Line(o, r, False) for o, r in lead),
        Line(offset, rec, True),
        *(Line(o, r, False) for o, r in tail),
    ]
