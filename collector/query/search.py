"""Searches over the storage interface: a merged stream of hits in time order, counts, files
with matches, and context groups, written as NDJSON rows to a sink on the scanning thread.

Results come in exact time order (newest first with ``order=desc``), merged across partitions
and topics by ``collector.query.merge``, which reads a few batches at a time in the order their
index time ranges demand: ``limit=N`` reads little more than the batches holding those N records.

Modes besides the plain stream of records:

- ``count`` (``grep -c``): a ``PartitionCount`` per partition, nothing materialized;
- ``files`` (``grep -l``): a ``FileCount`` per source with a match;
- ``before``/``after`` (``grep -B/-A``): ``ContextHit`` rows (``match`` false for a context
  line, ``group`` a new number where grep prints ``--``); context stays within the hit's own
  host and source, in the order that source was read (see ``collector.query.context``);
- ``progress``: ``Progress`` rows about every ``PROGRESS_S`` while the scan runs, even when it
  finds nothing, so a client can show how far a long scan got;
- ``from`` (a page cursor): the stream resumes where the ``cursor`` of an earlier ``Done`` row
  said, which a stream cut by ``limit`` gives (see ``collector.query.paging``).

Every search ends with a ``Done`` row, or an ``{"error"}`` line when it fails midway.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

from collector.filters.query import Query
from collector.metrics import Metrics
from collector.query import paging
from collector.query.context import iter_groups
from collector.query.merge import iter_hits
from collector.query.selection import Selection
from collector.storage.interface import Storage
from collector.storage.scan import ScanStats, Watch
from wharf.api import (
    ContextHit,
    Done,
    FileCount,
    Hit,
    PartitionCount,
    Progress,
    ProgressInfo,
    SearchRequest,
    SearchStats,
    encode_row,
    error_row,
)
from wharf.errors import WharfError
from wharf.record import Record

log = logging.getLogger(__name__)

# Output is handed to the sink in chunks of about this size: big enough that the per-chunk cost
# (a queue put, a loop wake-up) vanishes, small enough that the first lines of a slow search
# reach the client early.
CHUNK_BYTES: Final = 64 * 1024
# A chunk is handed over after this long even if small, so sparse hits arrive promptly.
_FLUSH_S: Final = 0.1
# Progress lines come about this often (never before the first interval: a quick search sends
# none). ``run_search(progress_s=...)`` changes it (tests use 0: every batch).
PROGRESS_S: Final = 0.5
# At most this many corrupt-batch messages go into the final stats line (all are counted).
_MAX_ERROR_MESSAGES: Final = 20


class Sink(Protocol):
    """Where a search's NDJSON goes (``collector.http.stream.Feed`` hands it to the loop)."""

    cancelled: threading.Event

    def put(self, chunk: bytes) -> bool:
        """Hand over a non-empty chunk, waiting for room; ``False`` once the reader is gone."""
        ...

    def close(self) -> None:
        """Mark the end of the stream."""
        ...


def hit_row(topic: str, partition: int, offset: int, rec: Record) -> bytes:
    """One NDJSON line for a record."""
    return encode_row(
        Hit(topic, partition, offset, rec.ts, rec.host, rec.source, rec.line, rec.fields, rec.level)
    )


def stats_row(stats: ScanStats, matched: int, started: float) -> SearchStats:
    """The ``stats`` of an answer: what the scan touched, ``matched`` records, the time since
    ``started`` (``time.monotonic()``)."""
    return SearchStats(
        matched=matched,
        batches_total=stats.batches_total,
        batches_read=stats.batches_read,
        bytes_read=stats.bytes_read,
        bytes_decompressed=stats.bytes_decompressed,
        errors=len(stats.errors),
        error_messages=[str(e) for e in stats.errors[:_MAX_ERROR_MESSAGES]],
        elapsed_ms=round((time.monotonic() - started) * 1000, 3),
    )


@dataclass
class _Outcome:
    stats: ScanStats = field(default_factory=ScanStats)
    matched: int = 0
    started: float = field(default_factory=time.monotonic)

    def stats_row(self) -> SearchStats:
        return stats_row(self.stats, self.matched, self.started)

    def line(self, count: int | None = None, cursor: str | None = None) -> bytes:
        return encode_row(Done(done=True, count=count, stats=self.stats_row(), cursor=cursor))


class _Writer:
    """NDJSON output of one search on its scanning thread: buffered into chunks for the sink,
    flushed by size or age, with progress lines when asked. ``tick`` is called before every
    batch the scan reads, so output and progress flow even through long stretches without
    hits."""

    def __init__(self, feed: Sink, out: _Outcome, progress: float | None, bytes_total: int) -> None:
        self.feed = feed
        self.out = out
        self.progress = progress  # seconds between progress lines, None for none
        self.bytes_total = bytes_total
        self.buf = bytearray()
        self.flushed = time.monotonic()
        self.reported = self.flushed
        self.alive = True

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buf and self.alive:
            self.alive = self.feed.put(bytes(self.buf))
        self.buf.clear()
        self.flushed = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if self.buf and now - self.flushed >= _FLUSH_S:
            self.flush()
        if self.progress is not None and now - self.reported >= self.progress:
            self.reported = now
            s = self.out.stats
            info = ProgressInfo(
                bytes_read=s.bytes_read,
                bytes_total=self.bytes_total,
                batches_read=s.batches_read,
                matched=self.out.matched,
                elapsed_ms=round((now - self.out.started) * 1000, 3),
            )
            self.add(encode_row(Progress(info)))
            self.flush()

    def finish(self, last: bytes) -> None:
        self.buf += last
        self.flush()


def planned_bytes(store: Storage, topics: list[str], query: Query) -> int:
    """Stored bytes of the batches a search may read: those in its time range (index only)."""
    lo, hi = query.ts_bounds()
    total = 0
    for topic in topics:
        for part in store.partitions(topic):
            for ref in part.refs(min_ts=lo, max_ts=hi):
                total += ref.stored_bytes
    return total


def run_search(
    store: Storage,
    spec: SearchRequest,
    selection: Selection,
    feed: Sink,
    metrics: Metrics,
    progress_s: float = PROGRESS_S,
    page: paging.Page | None = None,
) -> None:
    """Scan for ``spec`` and hand NDJSON chunks to ``feed`` (worker thread). Always ends the
    feed; stops early when the reader cancels. ``page``: where ``spec``'s ``from`` cursor
    resumes (``paging.parse``)."""
    out = _Outcome()
    cancel = feed.cancelled
    outcome = "completed"
    metrics.searches_active.inc()
    try:
        f = selection
        total = planned_bytes(store, f.topics, f.query) if spec.progress else 0
        w = _Writer(feed, out, progress_s if spec.progress else None, total)
        if spec.count:
            _count(store, f, w)
        elif spec.files:
            _files(store, f, w)
        elif spec.context:
            _groups(store, spec, f, w)
        else:
            _stream(store, spec, f, w, page)
        if cancel.is_set():
            outcome = "cancelled"
    except WharfError as exc:
        outcome = "failed"
        feed.put(error_line(exc))
    except Exception as exc:
        outcome = "failed"
        log.exception("search failed")
        feed.put(error_line(exc))
    finally:
        metrics.searches_active.dec()
        metrics.searches.labels(outcome).inc()
        metrics.scan_bytes.inc(out.stats.bytes_read)
        feed.close()


def _stream(
    store: Storage, spec: SearchRequest, f: Selection, w: _Writer, page: paging.Page | None
) -> None:
    cancel = w.feed.cancelled
    out = w.out
    desc = spec.order == "desc"
    here = page if page is not None else paging.start(store, f.topics, desc=desc)
    hits = iter_hits(
        store,
        f.topics,
        paging.narrowed(f.query, here.last, desc=desc),
        f.predicate,
        desc=desc,
        cancel=cancel,
        stats=out.stats,
        ends=here.positions if desc else None,
        starts=None if desc else here.positions,
        tick=w.tick,
    )
    unsent = paging.after(f.topics, here.last, desc=desc) if here.last is not None else None
    sent: dict[paging.Position, int] = {}  # per partition the farthest offset sent
    farther = min if desc else max
    cut = None
    for hit in hits:
        if cancel.is_set() or not w.alive:
            return
        if unsent is not None and not unsent(hit):
            continue
        w.add(hit_row(hit.topic, hit.partition, hit.offset, hit.record))
        key = (hit.topic, hit.partition)
        sent[key] = farther(sent.get(key, hit.offset), hit.offset)
        out.matched += 1
        if spec.limit is not None and out.matched >= spec.limit:
            cut = hit
            break
    if cancel.is_set():
        return
    cursor = None
    if cut is not None:
        nxt = paging.following(
            store, f.topics, f.query, f.predicate, here, sent, cut, desc=desc, stats=out.stats
        )
        cursor = nxt.text()
    w.finish(out.line(cursor=cursor))


def _groups(store: Storage, spec: SearchRequest, f: Selection, w: _Writer) -> None:
    cancel = w.feed.cancelled
    out = w.out
    after = spec.after or 0
    groups = iter_groups(
        store,
        f.topics,
        f.query,
        f.predicate,
        before=spec.before or 0,
        after=after,
        cancel=cancel,
        stats=out.stats,
        tick=w.tick,
    )
    for number, g in enumerate(groups):
        if cancel.is_set() or not w.alive:
            return
        trailing = None  # context lines still allowed after the last match the limit lets in
        for line in g.lines:
            if trailing is not None and (line.match or trailing == 0):
                break
            r = line.record
            item = ContextHit(
                g.topic, g.partition, line.offset, r.ts, r.host, r.source, r.line, r.fields,
                r.level, line.match, number,
            )  # fmt: skip
            w.add(encode_row(item))
            if trailing is not None:
                trailing -= 1
            if line.match:
                out.matched += 1
                if spec.limit is not None and out.matched >= spec.limit:
                    trailing = after
        if trailing is not None:
            break
    if not cancel.is_set():
        w.finish(out.line())


def _count(store: Storage, f: Selection, w: _Writer) -> None:
    cancel = w.feed.cancelled
    out = w.out
    names = [(topic, part.number) for topic in f.topics for part in store.partitions(topic)]
    counts = store.count(
        names, f.query, predicate=f.predicate, stats=out.stats, watch=Watch(cancel, w.tick)
    )
    if cancel.is_set():
        return
    for (topic, number), n in zip(names, counts, strict=True):
        out.matched += n
        w.add(encode_row(PartitionCount(topic, number, n)))
    w.finish(out.line(count=out.matched))


def _files(store: Storage, f: Selection, w: _Writer) -> None:
    cancel = w.feed.cancelled
    out = w.out
    watch = Watch(cancel, w.tick)
    for topic in f.topics:
        found: dict[tuple[str, str], int] = {}
        for part in store.partitions(topic):
            for h in part.scan(f.query, predicate=f.predicate, stats=out.stats, watch=watch):
                key = (h.record.host, h.record.source)
                found[key] = found.get(key, 0) + 1
            if cancel.is_set():
                return
        for (host, source), n in sorted(found.items()):
            out.matched += n
            w.add(encode_row(FileCount(topic, host, source, n)))
    w.finish(out.line(count=out.matched))


def error_line(exc: Exception) -> bytes:
    """The ``{"error", "code", "retriable"}`` line that ends a stream which failed midway (an
    unexpected exception is named by its type only: its text may hold anything)."""
    return encode_row(error_row(exc))
