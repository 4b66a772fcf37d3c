"""Search a partition: prune by index, then token filter, then host/source, then one matcher
pass per batch.

Pruning order, cheapest first: the index's per-batch time range (no I/O), a compacted batch's
token filter (``collector.filters.tokens``: a few KiB read, the batch is skipped when a token
every match needs is absent), the batch's host and source dictionaries (uncompressed meta, no
decompression), then the lines blob is decompressed and searched once. Reading and decompressing run on a small thread pool ahead of the matcher
(zstd and pread release the GIL), so one core decompresses while the other searches, the way
``zstd -dc | grep`` uses two processes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, NamedTuple, Protocol

from collector.filters.match import LineMatcher
from collector.filters.query import Predicate, Query
from collector.filters.tokens import required_tokens
from wharf import batch as wb
from wharf.errors import CorruptBatch
from wharf.record import Record


class LoadableSpan(Protocol):
    """A batch as a backend's index knows it, and how to read it (``interface.BatchSpan``)."""

    @property
    def base_offset(self) -> int: ...

    @property
    def min_ts(self) -> int: ...

    @property
    def max_ts(self) -> int: ...

    @property
    def stored_bytes(self) -> int: ...

    def load(self) -> wb.Batch:
        """Read and check the stored batch (``CorruptBatch`` when damaged)."""
        ...

    def may_contain(self, tokens: Sequence[bytes]) -> bool:
        """``False`` only when the batch certainly lacks one of ``tokens``."""
        ...


class Plannable(Protocol):
    """What a scan needs of a partition: its number and its plan of batches."""

    @property
    def number(self) -> int: ...

    def refs(
        self,
        from_offset: int | None = None,
        *,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> Iterator[LoadableSpan]: ...


log = logging.getLogger(__name__)

# Batches read ahead of the matcher: enough to keep the decompressing threads busy, few enough
# to bound memory (each holds one decompressed lines blob, at most batch.MAX_LINES_BYTES).
_PREFETCH: Final = 4
_POOL = ThreadPoolExecutor(
    max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="scan"
)


def offset_for_time(part: Plannable, ts: int, end: int) -> int:
    """The first offset of ``part`` whose record is stamped at or after ``ts`` (``end``, the
    partition's end, when none is): the batches that may hold it, read in offset order."""
    for ref in part.refs(min_ts=ts):
        try:
            stamps = ref.load().timestamps()
        except CorruptBatch as exc:
            log.error("offset_for_time: %s", exc)
            continue
        for i, t in enumerate(stamps):
            if t >= ts:
                return ref.base_offset + i
    return end


class ScanHit(NamedTuple):
    """One matching record and where it is stored."""

    partition: int
    offset: int
    record: Record


@dataclass
class ScanStats:
    """What a scan touched: for progress lines, metrics and the pruning benchmark."""

    batches_total: int = 0
    batches_filtered: int = 0  # skipped by their token filter, never read
    batches_read: int = 0
    bytes_read: int = 0
    bytes_decompressed: int = 0
    records_matched: int = 0
    errors: list[CorruptBatch] = field(default_factory=list)


@dataclass(frozen=True)
class Watch:
    """What a long scan checks before each batch it reads: ``cancel`` ends it there (when nothing
    matches, nothing else would), ``tick`` runs on the scanning thread (progress lines and the
    flushing of buffered output hang off it)."""

    cancel: threading.Event
    tick: Callable[[], None] | None = None


class _Loaded(NamedTuple):
    tag: int  # which of the scanned partitions the batch belongs to
    ref: LoadableSpan
    batch: wb.Batch | None
    hosts: set[int] | None
    sources: set[int] | None
    error: CorruptBatch | None


def allowed(b: wb.Batch, query: Query) -> tuple[set[int] | None, set[int] | None]:
    """The batch's host and source dictionary codes the query admits (``None``: all)."""
    return query.allowed(b.hosts, query.hosts), query.allowed(b.sources, query.sources)


def _load(tag: int, ref: LoadableSpan, query: Query) -> _Loaded:
    """Read one batch, check it, prune by host/source, decompress its lines."""
    try:
        b = ref.load()
        hosts, sources = allowed(b, query)
        if hosts == set() or sources == set():
            return _Loaded(tag, ref, None, hosts, sources, None)
        b.lines_blob()
        return _Loaded(tag, ref, b, hosts, sources, None)
    except CorruptBatch as exc:
        return _Loaded(tag, ref, None, None, None, exc)
    except OSError as exc:
        return _Loaded(tag, ref, None, None, None, CorruptBatch(str(exc), f"{ref!r}"))


def _pipeline(refs: Iterable[tuple[int, LoadableSpan]], query: Query) -> Iterator[_Loaded]:
    pending: deque[Future[_Loaded]] = deque()
    for tag, ref in refs:
        pending.append(_POOL.submit(_load, tag, ref, query))
        if len(pending) >= _PREFETCH:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _needs_per_record_filter(
    b: wb.Batch, hosts: set[int] | None, sources: set[int] | None, query: Query
) -> bool:
    """Whether time, host or source filters cut through this batch (else all or nothing)."""
    h = b.header
    lo, hi = query.ts_bounds()
    return (
        (lo is not None and h.min_ts < lo)
        or (hi is not None and h.max_ts > hi)
        or (hosts is not None and len(hosts) < len(b.hosts))
        or (sources is not None and len(sources) < len(b.sources))
    )


def _select(
    b: wb.Batch,
    hosts: set[int] | None,
    sources: set[int] | None,
    query: Query,
    matcher: LineMatcher,
) -> list[int]:
    """Indexes of the records of a batch that satisfy the whole query (``hosts``/``sources``:
    the dictionary codes it admits, from ``allowed``)."""
    n = len(b)
    if query.pattern or query.invert:
        idx: Sequence[int] = matcher.matching(b)
    else:
        idx = range(n)
    h = b.header
    lo, hi = query.ts_bounds()
    if (lo is not None and h.min_ts < lo) or (hi is not None and h.max_ts > hi):
        stamps = b.timestamps()
        idx = [i for i in idx if query.in_time(stamps[i])]
    if hosts is not None and len(hosts) < len(b.hosts):
        host_of = b.host_indexes()
        idx = [i for i in idx if host_of[i] in hosts]
    if sources is not None and len(sources) < len(b.sources):
        source_of = b.source_indexes()
        idx = [i for i in idx if source_of[i] in sources]
    return list(idx)


def count_batch(
    b: wb.Batch,
    hosts: set[int] | None,
    sources: set[int] | None,
    query: Query,
    matcher: LineMatcher,
) -> int:
    """How many records of one (not pruned) batch satisfy ``query``, nothing materialized
    when no filter cuts through the batch."""
    if _needs_per_record_filter(b, hosts, sources, query):
        return len(_select(b, hosts, sources, query, matcher))
    if query.pattern or query.invert:
        return matcher.count(b)
    return len(b)


def scan(
    part: Plannable,
    query: Query,
    *,
    predicate: Predicate | None = None,
    from_offset: int | None = None,
    to_offset: int | None = None,
    stats: ScanStats | None = None,
    watch: Watch | None = None,
) -> Iterator[ScanHit]:
    """Records of one partition matching ``query`` and ``predicate``, in offset order, within
    ``[from_offset, to_offset)``.

    A corrupt batch is logged, counted in ``stats.errors`` and skipped: the rest stays readable.
    """
    stats = stats if stats is not None else ScanStats()
    matcher = query.matcher()
    lo, hi = query.ts_bounds()
    refs = part.refs(from_offset, min_ts=lo, max_ts=hi)
    for loaded in _pipeline(bounded(0, refs, to_offset, stats, watch, needed(query)), query):
        if loaded.error is not None:
            log.error("scan: %s", loaded.error)
            stats.errors.append(loaded.error)
            continue
        stats.batches_read += 1
        stats.bytes_read += loaded.ref.stored_bytes
        b = loaded.batch
        if b is None:
            continue
        stats.bytes_decompressed += b.header.lines_ulen
        base = loaded.ref.base_offset
        idx = _select(b, loaded.hosts, loaded.sources, query, matcher)
        idx = [
            i
            for i in idx
            if (from_offset is None or base + i >= from_offset)
            and (to_offset is None or base + i < to_offset)
        ]
        if not idx:
            continue
        try:
            records = b.records(idx)
        except CorruptBatch as exc:
            stats.errors.append(exc)
            continue
        for i, rec in zip(idx, records, strict=True):
            if predicate is None or predicate.matches(rec):
                stats.records_matched += 1
                yield ScanHit(part.number, base + i, rec)


def count(
    part: Plannable, query: Query, *, stats: ScanStats | None = None, watch: Watch | None = None
) -> int:
    """How many records of a partition satisfy ``query`` (``grep -c``): nothing materialized."""
    return count_partitions([part], query, stats=stats, watch=watch)[0]


def count_partitions(
    parts: Sequence[Plannable],
    query: Query,
    *,
    stats: ScanStats | None = None,
    watch: Watch | None = None,
) -> list[int]:
    """``count`` for each of ``parts``, through one read-ahead pipeline: a narrow time range
    touches a batch or two per partition, and a pipeline per partition would start cold (no
    batch decompressing while the last one is searched) for every one of them."""
    stats = stats if stats is not None else ScanStats()
    matcher = query.matcher()
    lo, hi = query.ts_bounds()
    totals = [0] * len(parts)
    tokens = needed(query)
    refs = (
        tagged
        for tag, part in enumerate(parts)
        for tagged in bounded(tag, part.refs(min_ts=lo, max_ts=hi), None, stats, watch, tokens)
    )
    for loaded in _pipeline(refs, query):
        if loaded.error is not None:
            log.error("count: %s", loaded.error)
            stats.errors.append(loaded.error)
            continue
        stats.batches_read += 1
        stats.bytes_read += loaded.ref.stored_bytes
        if loaded.batch is None:
            continue
        b = loaded.batch
        stats.bytes_decompressed += b.header.lines_ulen
        n = count_batch(b, loaded.hosts, loaded.sources, query, matcher)
        stats.records_matched += n
        totals[loaded.tag] += n
    return totals


def needed(query: Query) -> list[bytes]:
    """The tokens every line matching ``query`` holds whole (for the batches' token filters)."""
    return required_tokens(
        query.pattern, fixed=query.fixed, ignore_case=query.ignore_case, invert=query.invert
    )


def bounded(
    tag: int,
    refs: Iterator[LoadableSpan],
    to_offset: int | None,
    stats: ScanStats,
    watch: Watch | None,
    tokens: Sequence[bytes] = (),
) -> Iterator[tuple[int, LoadableSpan]]:
    """``refs`` below ``to_offset`` whose filters admit ``tokens``, until ``watch`` cancels."""
    for ref in refs:
        if to_offset is not None and ref.base_offset >= to_offset:
            return
        if watch is not None:
            if watch.cancel.is_set():
                return
            if watch.tick is not None:
                watch.tick()
        stats.batches_total += 1
        if tokens and not ref.may_contain(tokens):
            stats.batches_filtered += 1
            continue
        yield tag, ref
