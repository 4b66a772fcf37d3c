"""The records a query selects, batch by batch, as row indexes: counting by columns without
materializing a record (the histogram, and the facets over host, source and level).

Selection follows the scan's rules (``collector.storage.scan``) exactly, so what is tallied
here adds up to what ``count=1`` (``grep -c``) counts: batches planned by the index's time
range, pruned by their host and source dictionaries, then the line pattern, the time range,
host and source; ``level=`` is a mask on the level column (the same test as the levels
predicate, without the record). Only what a batch needs is decoded: the lines blob when there
is a pattern, the timestamps when the time range cuts through the batch (they are handed on, so
a histogram never decodes them twice).

Batches are read ahead on a small pool, as the scan does (pread, the checksum and zstd release
the GIL): one core reads and decompresses while the other tallies.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, NamedTuple

from collector.filters.match import LineMatcher
from collector.filters.query import Query
from collector.storage.scan import (
    LoadableSpan,
    Plannable,
    ScanStats,
    Watch,
    allowed,
    bounded,
    needed,
)
from wharf import batch as wb
from wharf.errors import CorruptBatch
from wharf.record import LEVELS

log = logging.getLogger(__name__)

# Batches read ahead of the tally: keeps the reading threads busy, bounds memory to a few
# batches (each at most batch.MAX_BATCH_BYTES stored, its columns and lines decompressed).
_PREFETCH: Final = 4
_POOL = ThreadPoolExecutor(
    max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="columns"
)


def level_codes(levels: frozenset[str | None]) -> frozenset[int]:
    """The batch level codes of ``level=`` names (``None``: no level, code 0; the level names
    are codes 1.. in the order of ``LEVELS``, see ``wharf.batch``)."""
    return frozenset(0 if name is None else LEVELS.index(name) + 1 for name in levels)


class Selected(NamedTuple):
    """One batch and the records of it the query selects."""

    tag: int  # which of the partitions handed to ``select_rows``
    batch: wb.Batch
    rows: Sequence[int] | None  # ascending record indexes; None: every record of the batch
    stamps: list[int] | None  # the records' timestamps, when selecting them needed them


class _Loaded(NamedTuple):
    tag: int
    ref: LoadableSpan
    batch: wb.Batch | None  # None: pruned by host/source, or damaged (then ``error``)
    hosts: set[int] | None
    sources: set[int] | None
    error: CorruptBatch | None


def _load(tag: int, ref: LoadableSpan, query: Query, lines: bool) -> _Loaded:
    """Read one batch, prune by host/source, decompress its columns (and lines if needed)."""
    try:
        b = ref.load()
        hosts, sources = allowed(b, query)
        if hosts == set() or sources == set():
            return _Loaded(tag, ref, None, hosts, sources, None)
        b.columns()
        if lines:
            b.lines_blob()
        return _Loaded(tag, ref, b, hosts, sources, None)
    except CorruptBatch as exc:
        return _Loaded(tag, ref, None, None, None, exc)
    except OSError as exc:
        return _Loaded(tag, ref, None, None, None, CorruptBatch(str(exc), f"{ref!r}"))


def _planned(
    parts: Sequence[Plannable], query: Query, stats: ScanStats, watch: Watch
) -> Iterator[tuple[int, LoadableSpan]]:
    lo, hi = query.ts_bounds()
    tokens = needed(query)
    for tag, part in enumerate(parts):
        yield from bounded(tag, part.refs(min_ts=lo, max_ts=hi), None, stats, watch, tokens)


def _read_ahead(
    refs: Iterator[tuple[int, LoadableSpan]], query: Query, lines: bool
) -> Iterator[_Loaded]:
    pending: deque[Future[_Loaded]] = deque()
    try:
        for tag, ref in refs:
            pending.append(_POOL.submit(_load, tag, ref, query, lines))
            if len(pending) >= _PREFETCH:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def select_rows(
    parts: Sequence[Plannable],
    query: Query,
    levels: frozenset[int] | None,
    *,
    stats: ScanStats,
    watch: Watch,
) -> Iterator[Selected]:
    """Every batch of ``parts`` with records selected by ``query`` and the level ``levels``
    (codes, see ``level_codes``; ``None``: every level), in plan order. Damaged batches are
    logged, counted in ``stats.errors`` and skipped, as a scan skips them."""
    matcher = query.matcher()
    pattern = bool(query.pattern or query.invert)
    lo, hi = query.ts_bounds()
    for loaded in _read_ahead(_planned(parts, query, stats, watch), query, pattern):
        if loaded.error is not None:
            log.error("columns: %s", loaded.error)
            stats.errors.append(loaded.error)
            continue
        stats.batches_read += 1
        stats.bytes_read += loaded.ref.stored_bytes
        b = loaded.batch
        if b is None:
            continue
        h = b.header
        stats.bytes_decompressed += h.cols_ulen + (h.lines_ulen if pattern else 0)
        try:
            rows, stamps = _rows(b, loaded.hosts, loaded.sources, levels, matcher, pattern, lo, hi)
        except CorruptBatch as exc:
            log.error("columns: %s", exc)
            stats.errors.append(exc)
            continue
        if rows is None or rows:
            stats.records_matched += len(b) if rows is None else len(rows)
            yield Selected(loaded.tag, b, rows, stamps)


def _rows(
    b: wb.Batch,
    hosts: set[int] | None,
    sources: set[int] | None,
    levels: frozenset[int] | None,
    matcher: LineMatcher,
    pattern: bool,
    lo: int | None,
    hi: int | None,
) -> tuple[Sequence[int] | None, list[int] | None]:
    """The selected rows of one batch (``None``: all) and its timestamps if they were needed,
    in the scan's order of filters (``scan._select``), then the level mask."""
    rows: Sequence[int] | None = None
    if pattern:
        rows = matcher.matching(b)
    stamps: list[int] | None = None
    h = b.header
    if (lo is not None and h.min_ts < lo) or (hi is not None and h.max_ts > hi):
        stamps = b.timestamps()
        low = lo if lo is not None else h.min_ts
        high = hi if hi is not None else h.max_ts
        rows = [i for i in (range(len(b)) if rows is None else rows) if low <= stamps[i] <= high]
    if hosts is not None and len(hosts) < len(b.hosts):
        host_of = b.host_indexes()
        rows = [i for i in (range(len(b)) if rows is None else rows) if host_of[i] in hosts]
    if sources is not None and len(sources) < len(b.sources):
        source_of = b.source_indexes()
        rows = [i for i in (range(len(b)) if rows is None else rows) if source_of[i] in sources]
    if levels is not None:
        codes = b.columns().level
        if not set(codes) <= levels:
            rows = [i for i in (range(len(b)) if rows is None else rows) if codes[i] in levels]
    return rows, stamps
