"""Paging a search: the ``from=`` cursor a search resumes at, and the cursor its ``Done`` row
gives when ``limit`` cut it. Repeating the query with ``from=CURSOR`` returns exactly the next
hits: no gap, no repeat, in the same order.

The cursor has the tail's form, ``topic:partition:offset,...``, one item per partition of the
searched topics. Oldest first (``order=asc``) an item is the offset to continue from: every
match below it was sent (a partition not reached yet keeps its start). Newest first it is the
offset to continue below: every match at or above it was sent (a partition not reached keeps
the end it had when the first page started, so records appended since never slip into the
middle of a newest-first listing; oldest first they come on the last pages, as in a tail).

Hits come in time order (``collector.query.merge``), and a partition's records are not always
in time order: a web server logs a request when it ends, stamped with the time it began. Then
a page can end with hits sent from beyond a partition's first unsent match. The cursor then
carries one more item, ``@TS:topic:partition:offset``, the last hit sent: the next page skips
every match that comes at or before it in the merge order (time, topic as listed, partition,
offset), and starts each partition at its first unsent match. Whether that item is needed is
decided by reading the batches near the last hit's time again (the index prunes the rest), so
a cursor over records in order looks exactly like a tail's.

Exact as long as the merge is (a search holding back more than ``merge.MAX_BUFFERED`` hits
degrades to "sorted within that many", and so would the pages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from collector.filters.query import Predicate, Query
from collector.query.merge import MergedHit
from collector.storage.interface import PartitionReader, Storage
from collector.storage.scan import ScanHit, ScanStats
from wharf.errors import InvalidArgument, OffsetOutOfRange

Position = tuple[str, int]  # (topic, partition)
SortKey = tuple[int, int, int, int]  # (ts, topic rank, partition, offset): the merge order


class Last(NamedTuple):
    """The last hit a page sent."""

    ts: int
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Page:
    """Where a page starts: per partition the offset to continue from (ascending) or below
    (descending), and the last hit sent before when the order needs it."""

    positions: dict[Position, int]
    last: Last | None = None

    def text(self) -> str:
        """The cursor (see the module docstring)."""
        items = [f"{t}:{p}:{o}" for (t, p), o in sorted(self.positions.items())]
        if self.last is not None:
            ts, topic, p, o = self.last
            items.append(f"@{ts}:{topic}:{p}:{o}")
        return ",".join(items)


def _int(text: str, signed: bool = False) -> int | None:
    body = text[1:] if signed and text.startswith("-") else text
    return int(text) if body.isascii() and body.isdigit() else None


def parse(store: Storage, text: str, topics: list[str], *, desc: bool) -> Page:
    """The page of a ``from=`` cursor for a search of ``topics`` (errors before the answer
    starts: ``InvalidArgument`` for a malformed cursor or a partition the topics lack,
    ``OffsetOutOfRange`` for an offset past a partition's end)."""
    given: dict[Position, int] = {}
    last: Last | None = None
    for item in filter(None, (s.strip() for s in text.split(","))):
        if item.startswith("@"):
            fields = item[1:].split(":")
            nums = (
                [_int(fields[0], signed=True), *map(_int, fields[2:])] if len(fields) == 4 else []
            )
            if len(nums) != 3 or None in nums:
                raise InvalidArgument(
                    f"from={item!r}: expected @ts:topic:partition:offset (as a search's done "
                    "line gives it)"
                )
            ts, p, o = (n for n in nums if n is not None)
            last = Last(ts, _searched(fields[1], topics, item), p, o)
            continue
        fields = item.split(":")
        if len(fields) == 2 and len(topics) == 1:
            fields = [topics[0], *fields]
        nums = [_int(x) for x in fields[1:]] if len(fields) == 3 else []
        if len(nums) != 2 or None in nums:
            raise InvalidArgument(
                f"from={item!r}: expected topic:partition:offset (or partition:offset when "
                "searching one topic)"
            )
        p, o = (n for n in nums if n is not None)
        given[(_searched(fields[0], topics, item), p)] = o
    page = start(store, topics, desc=desc)
    for (topic, p), offset in given.items():
        part = store.partition(topic, p)  # InvalidArgument for a partition it lacks
        end = part.durable_offset
        if offset > end:
            raise OffsetOutOfRange(f"from: offset {offset} is past the end of {topic}:{p} ({end})")
        page.positions[(topic, p)] = max(offset, part.start_offset)
    return Page(page.positions, last)


def _searched(topic: str, topics: list[str], item: str) -> str:
    if topic not in topics:
        raise InvalidArgument(f"from={item!r}: topic {topic!r} is not searched")
    return topic


def start(store: Storage, topics: list[str], *, desc: bool) -> Page:
    """The first page: every partition from its start, or below its present end."""
    return Page(
        {
            (t, part.number): part.durable_offset if desc else part.start_offset
            for t in topics
            for part in store.partitions(t)
        }
    )


def narrowed(query: Query, last: Last | None, *, desc: bool) -> Query:
    """``query`` cut to the times the page after ``last`` can hold (pruning only: ``after``
    does the exact cut)."""
    if last is None:
        return query
    return _from_time(query, last.ts) if not desc else _to_time(query, last.ts)


def _from_time(query: Query, ts: int) -> Query:
    since = ts if query.since_ns is None else max(query.since_ns, ts)
    return msgspec.structs.replace(query, since_ns=since)


def _to_time(query: Query, ts: int) -> Query:
    until = ts + 1 if query.until_ns is None else min(query.until_ns, ts + 1)
    return msgspec.structs.replace(query, until_ns=until)


def after(topics: list[str], last: Last, *, desc: bool) -> Callable[[MergedHit], bool]:
    """Whether a hit comes after ``last`` in the merge order (was not sent yet)."""
    bound = _key(topics, last)
    if desc:
        return lambda h: (h.ts, h.topic_rank, h.partition, h.offset) < bound
    return lambda h: (h.ts, h.topic_rank, h.partition, h.offset) > bound


def _key(topics: list[str], last: Last) -> SortKey:
    return (last.ts, topics.index(last.topic), last.partition, last.offset)


def following(
    store: Storage,
    topics: list[str],
    query: Query,
    predicate: Predicate | None,
    page: Page,
    sent: dict[Position, int],
    last: MergedHit,
    *,
    desc: bool,
    stats: ScanStats,
) -> Page:
    """The page after ``page`` once its hits were sent up to ``last``: ``sent`` holds, per
    partition, the highest offset sent (the lowest when ``desc``)."""
    bound: SortKey = (last.ts, last.topic_rank, last.partition, last.offset)
    prior = page.last
    prior_bound = None if prior is None else _key(topics, prior)
    positions: dict[Position, int] = {}
    need_last = False
    for (topic, number), pos in page.positions.items():
        part = store.partition(topic, number)
        rank = topics.index(topic)

        def key(h: ScanHit, rank: int = rank) -> SortKey:
            return (h.record.ts, rank, h.partition, h.offset)

        edge = sent.get((topic, number))
        if not desc:
            at = pos if edge is None else edge + 1
            if edge is not None:  # the first match below the last one sent that was not sent
                late = _from_time(query, last.ts)
                first = next(
                    (h for h in _scan(part, late, predicate, pos, edge, stats) if key(h) > bound),
                    None,
                )
                at = at if first is None else first.offset
            # Matches sent (now or before) at or past the new position: then ``@`` is needed.
            check = bound if edge is not None else prior_bound
            if check is not None and not need_last:
                early = _to_time(query, check[0])
                need_last = any(
                    key(h) <= check for h in _scan(part, early, predicate, at, None, stats)
                )
        else:
            at = pos if edge is None else edge
            if edge is not None:  # just past the last match above the last one sent
                early = _to_time(query, last.ts)
                newer = [
                    h.offset
                    for h in _scan(part, early, predicate, edge + 1, pos, stats)
                    if key(h) < bound
                ]
                at = at if not newer else newer[-1] + 1
            check = bound if edge is not None else prior_bound
            if check is not None and not need_last:
                late = _from_time(query, check[0])
                need_last = any(
                    key(h) >= check for h in _scan(part, late, predicate, None, at, stats)
                )
        positions[(topic, number)] = at
    ts, rank, number, offset = bound
    return Page(positions, Last(ts, topics[rank], number, offset) if need_last else None)


def _scan(
    part: PartitionReader,
    query: Query,
    predicate: Predicate | None,
    lo: int | None,
    hi: int | None,
    stats: ScanStats,
) -> Iterator[ScanHit]:
    """Matches of ``part`` in offsets ``[lo, hi)`` (``None``: its start or end), in offset
    order; read as far as the caller takes them."""
    lo = part.start_offset if lo is None else max(lo, part.start_offset)
    hi = part.durable_offset if hi is None else min(hi, part.durable_offset)
    if lo >= hi:
        return
    try:
        yield from part.scan(query, predicate=predicate, from_offset=lo, to_offset=hi, stats=stats)
    except OffsetOutOfRange:  # retention deleted it meanwhile: nothing left to send there
        return
