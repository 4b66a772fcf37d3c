"""Records per time bucket, stacked by level: the volume histogram of ``GET /v1/histogram``.

Exact, never sampled: every record the query selects is counted once, in the bucket of its own
timestamp, so a bucket's counts add up to ``count=1`` over that bucket's time range. The counts
come from the batches' columns (``collector.query.columnar``): no record is materialized
unless the request has a ``where`` expression, which needs the fields (those records are then
read through the scan and its predicate, as a count with ``where`` reads them).

Most batches cost a few C calls, not a loop over their records. A batch whose time range lies
in one bucket needs no timestamp: it adds ``bytes.count`` of each level code (a ``Counter`` of
the selected rows' codes when a filter keeps some). A batch in time order (most are: a source
is read in order) is cut at the bucket edges by bisection and counted slice by slice. Only a
batch across bucket edges whose records are out of time order, or of which a filter keeps some
rows, is counted record by record.

Buckets are aligned to multiples of the step since the epoch (UTC), so zooming in or panning
keeps the edges where they were. Without ``step`` the server picks the smallest width of
``NICE_STEPS`` giving at most ``buckets`` buckets over ``[since, until)``; past the largest it
uses multiples of it.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from typing import Final

import msgspec

from collector.filters.query import Query
from collector.query.columnar import Selected, level_codes, select_rows
from collector.query.search import stats_row
from collector.query.selection import Selection
from collector.storage.interface import PartitionReader, Storage
from collector.storage.scan import ScanStats, Watch
from wharf.api import (
    DEFAULT_BUCKETS,
    MAX_BUCKETS,
    Histogram,
    HistogramBucket,
    HistogramRequest,
)
from wharf.errors import InvalidArgument
from wharf.record import LEVELS

_S: Final = 10**9
_M: Final = 60 * _S
_H: Final = 60 * _M
_D: Final = 24 * _H
# Bucket widths a person reads at a glance, smallest first.
NICE_STEPS: Final = (
    _S, 2 * _S, 5 * _S, 10 * _S, 15 * _S, 30 * _S,
    _M, 2 * _M, 5 * _M, 10 * _M, 15 * _M, 30 * _M,
    _H, 2 * _H, 3 * _H, 6 * _H, 12 * _H,
    _D, 2 * _D, 7 * _D,
)  # fmt: skip
# The answer's level order, most severe first (a stacked chart puts errors on top), and the
# column of each batch level code (0: no level, then ``LEVELS`` from trace up).
LEVEL_ORDER: Final = (*reversed(LEVELS), "none")
_WIDTH: Final = len(LEVEL_ORDER)
_COLUMN: Final = tuple([_WIDTH - 1] + [_WIDTH - 2 - i for i in range(len(LEVELS))])


def bucket_count(since: int, until: int, step: int) -> int:
    """Aligned buckets of width ``step`` covering ``[since, until)``."""
    return (until - 1) // step - since // step + 1


def pick_step(since: int, until: int, buckets: int) -> int:
    """The smallest nice width giving at most ``buckets`` aligned buckets over the range."""
    for step in NICE_STEPS:
        if bucket_count(since, until, step) <= buckets:
            return step
    big = NICE_STEPS[-1]
    k = -(-(until - since) // (big * buckets))
    while bucket_count(since, until, k * big) > buckets:
        k += 1
    return k * big


class Plan(msgspec.Struct, frozen=True):
    """The histogram's range and buckets: ``n`` buckets of ``step`` from ``first`` (aligned,
    at or before ``since``)."""

    since: int
    until: int
    step: int
    first: int
    n: int


def plan(store: Storage, sel: Selection, req: HistogramRequest, now_ns: int) -> Plan:
    """Resolve the defaults (``until``: now; ``since``: the earliest record of the selected
    topics) and the step; ``InvalidArgument`` for a step giving too many buckets."""
    until = req.until if req.until is not None else now_ns
    since = req.since
    if since is None:
        lows = [part.info().min_ts for t in sel.topics for part in store.partitions(t)]
        since = min(min((x for x in lows if x is not None), default=until), until)
    elif since >= until:
        raise InvalidArgument(f"empty time range: since {since} is not before until {until} (now)")
    cap = req.buckets if req.buckets is not None else DEFAULT_BUCKETS
    if since >= until:  # nothing stored yet, or only in the future
        step = req.step if req.step is not None else NICE_STEPS[0]
        return Plan(since, until, step, since - since % step, 0)
    if req.step is None:
        step = pick_step(since, until, cap)
    else:
        step = req.step
        cap = req.buckets if req.buckets is not None else MAX_BUCKETS
        n = bucket_count(since, until, step)
        if n > cap:
            raise InvalidArgument(
                f"parameter step={step} gives {n} buckets over [{since}, {until}), more than "
                f"{cap}: widen the step or narrow the range"
            )
    return Plan(since, until, step, since - since % step, bucket_count(since, until, step))


class _Tally:
    """Counts per bucket and level, flat: ``bucket * _WIDTH + column``."""

    def __init__(self, p: Plan) -> None:
        self.p = p
        self.flat = [0] * (p.n * _WIDTH)

    def bucket(self, ts: int) -> int:
        return (ts - self.p.first) // self.p.step

    def add(self, sel: Selected) -> None:
        b = sel.batch
        codes = b.columns().level
        h = b.header
        k = self.bucket(h.min_ts)
        if k == self.bucket(h.max_ts):  # one bucket: no timestamp is needed
            if sel.rows is None:
                self._counts(k, codes, 0, len(b))
            else:
                at, flat, column = k * _WIDTH, self.flat, _COLUMN
                for code, n in Counter(map(codes.__getitem__, sel.rows)).items():
                    flat[at + column[code]] += n
            return
        stamps = sel.stamps if sel.stamps is not None else b.timestamps()
        if sel.rows is None and stamps == sorted(stamps):
            # In time order: cut at the bucket edges by bisection, count each slice in C.
            first, last = self.bucket(stamps[0]), self.bucket(stamps[-1])
            start = 0
            for k in range(first, last + 1):
                edge = self.p.first + (k + 1) * self.p.step
                stop = len(stamps) if k == last else bisect_left(stamps, edge, start)
                self._counts(k, codes, start, stop)
                start = stop
            return
        rows: Sequence[int] = range(len(b)) if sel.rows is None else sel.rows
        flat, first, step, column = self.flat, self.p.first, self.p.step, _COLUMN
        for i in rows:
            flat[(stamps[i] - first) // step * _WIDTH + column[codes[i]]] += 1

    def _counts(self, k: int, codes: bytes, start: int, stop: int) -> None:
        if start >= stop:
            return
        at = k * _WIDTH
        for code, column in enumerate(_COLUMN):
            self.flat[at + column] += codes.count(code, start, stop)

    def add_record(self, ts: int, level: str | None) -> None:
        code = 0 if level is None else LEVELS.index(level) + 1
        self.flat[self.bucket(ts) * _WIDTH + _COLUMN[code]] += 1

    def buckets(self) -> list[HistogramBucket]:
        p, flat = self.p, self.flat
        return [
            HistogramBucket(p.first + k * p.step, flat[k * _WIDTH : (k + 1) * _WIDTH])
            for k in range(p.n)
        ]


def histogram(
    store: Storage,
    req: HistogramRequest,
    sel: Selection,
    cancel: threading.Event,
    now_ns: int | None = None,
) -> Histogram:
    """The histogram of ``req`` (worker thread; stops early, with what it counted, when
    ``cancel`` is set)."""
    started = time.monotonic()
    p = plan(store, sel, req, time.time_ns() if now_ns is None else now_ns)
    stats = ScanStats()
    tally = _Tally(p)
    if p.n:
        query = msgspec.structs.replace(sel.query, since_ns=p.since, until_ns=p.until)
        parts = [part for t in sel.topics for part in store.partitions(t)]
        watch = Watch(cancel)
        if sel.where is not None:
            _by_records(parts, query, sel, tally, stats, watch)
        else:
            levels = level_codes(sel.levels) if sel.levels is not None else None
            for selected in select_rows(parts, query, levels, stats=stats, watch=watch):
                tally.add(selected)
    total = sum(tally.flat)
    return Histogram(
        since=p.since,
        until=p.until,
        step=p.step,
        levels=list(LEVEL_ORDER),
        buckets=tally.buckets(),
        total=total,
        stats=stats_row(stats, total, started),
    )


def _by_records(
    parts: list[PartitionReader],
    query: Query,
    sel: Selection,
    tally: _Tally,
    stats: ScanStats,
    watch: Watch,
) -> None:
    for part in parts:
        for hit in part.scan(query, predicate=sel.predicate, stats=stats, watch=watch):
            tally.add_record(hit.record.ts, hit.record.level)
        if watch.cancel.is_set():
            return
