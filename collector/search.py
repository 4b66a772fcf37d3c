"""Search across topics and partitions: filters from query parameters, a merged stream of hits
in time order, and the ``GET /v1/search`` handler that runs it off the event loop.

Results come in exact time order (newest first with ``order=desc``), merged across partitions
and topics by ``collector.query.merge``, which reads a few batches at a time in the order their index
time ranges demand: ``limit=N`` reads little more than the batches holding those N records.

Modes besides the plain stream of records:

- ``count=1`` (``grep -c``): ``{"topic", "partition", "count"}`` per partition, nothing
  materialized;
- ``files=1`` (``grep -l``): ``{"topic", "host", "source", "count"}`` per source with a match;
- ``before=N``/``after=N`` (``grep -B/-A``): every record gains ``"match"`` (false for a context
  line) and ``"group"`` (a new number where grep prints ``--``); context stays within the hit's
  own host and source, in the order that source was read (see ``collector.query.merge``);
- ``progress=1``: ``{"progress": {...}}`` lines about every ``PROGRESS_S`` while the scan runs,
  even when it finds nothing, so a client can show how far a long scan got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import MultiMapping

from collector.filters import where as wh
from collector.filters.query import Query
from collector.http_util import (
    CHUNK_BYTES,
    CLIENT_CHECK_S,
    FEEDS,
    METRICS,
    SCAN_POOL,
    SCAN_WORKERS,
    STORE,
    Feed,
    HitOut,
    client_gone,
    encode_hit,
    encode_line,
    param_bool,
    param_int,
    param_list,
    start_ndjson,
)
from collector.metrics import Metrics
from collector.query.merge import Predicate, iter_groups, iter_hits
from collector.storage import Store
from collector.storage.scan import ScanStats, Watch, count_partitions, scan
from collector.storage.workers import ScanWorkers
from parsers.levels import normalize_level
from wharf.errors import InvalidArgument, WharfError
from wharf.record import LEVELS, Record

log = logging.getLogger(__name__)

# A chunk is handed to the loop after this long even if small, so sparse hits arrive promptly.
_FLUSH_S: Final = 0.1
# With progress=1, a progress line about this often (and never before the first interval: a
# quick search sends none). ``make_app(progress_s=...)`` changes it (tests use 0: every batch).
PROGRESS_S: Final = 0.5
PROGRESS_EVERY: Final = web.AppKey("search_progress_s", float)
# At most this many corrupt-batch messages go into the final stats line (all are counted).
_MAX_ERROR_MESSAGES: Final = 20
# Context lines per side, at most (grep has no limit; a search answer must stay bounded).
MAX_CONTEXT: Final = 1000
# ``level=`` accepts these besides the level names: records that carry no level.
_NO_LEVEL: Final = "none"


class _Levels:
    """``level=`` as a record filter."""

    __slots__ = ("_names",)

    def __init__(self, names: frozenset[str | None]) -> None:
        self._names = names

    def matches(self, record: Record) -> bool:
        return record.level in self._names


class _Both:
    __slots__ = ("_a", "_b")

    def __init__(self, a: Predicate, b: Predicate) -> None:
        self._a, self._b = a, b

    def matches(self, record: Record) -> bool:
        return self._a.matches(record) and self._b.matches(record)


def parse_levels(values: list[str]) -> frozenset[str | None] | None:
    """``level=`` items: a level (``error``, or a spelling like ``warning``), ``LEVEL+`` for that
    level and every more severe one, or ``none`` for records without a level."""
    if not values:
        return None
    out: set[str | None] = set()
    for raw in values:
        text = raw.strip().lower()
        plus = text.endswith("+")
        name = text.rstrip("+").strip()
        if name == _NO_LEVEL and not plus:
            out.add(None)
            continue
        level = normalize_level(name)
        if level is None:
            raise InvalidArgument(
                f"unknown level {raw!r}: use {', '.join(LEVELS)} or none, "
                "optionally with + for that level and above (warn+)"
            )
        out.update(LEVELS[LEVELS.index(level) :] if plus else (level,))
    return frozenset(out)


@dataclass(frozen=True)
class Filters:
    """What search and tail select: topics, the line query, an optional ``where`` and levels."""

    topics: list[str]
    query: Query
    where: wh.Where | None
    levels: frozenset[str | None] | None = None

    @property
    def predicate(self) -> Predicate | None:
        """The per-record filter beyond the line query (``None``: every record passes)."""
        levels = _Levels(self.levels) if self.levels is not None else None
        if self.where is not None and levels is not None:
            return _Both(levels, self.where)
        return self.where or levels


@dataclass(frozen=True)
class SearchSpec:
    """A parsed ``/v1/search`` request."""

    filters: Filters
    limit: int | None
    desc: bool
    count: bool
    files: bool = False
    before: int | None = None  # context lines; both None unless context was asked for
    after: int | None = None
    progress: bool = False
    progress_s: float = PROGRESS_S

    @property
    def context(self) -> bool:
        """Whether records come in context groups."""
        return self.before is not None or self.after is not None


def parse_filters(q: MultiMapping[str], store: Store) -> Filters:
    """Topics, pattern, flags, globs, time range, ``where`` and levels from query parameters.

    Every error (unknown topic, bad regex, bad ``where``, empty time range) is raised here,
    before a response starts, so the client gets a proper status.
    """
    topics = param_list(q, "topic") or store.topics()
    for t in topics:
        store.describe(t)  # UnknownTopic / InvalidTopicName
    query = Query(
        pattern=q.get("q", ""),
        fixed=param_bool(q, "fixed"),
        ignore_case=param_bool(q, "icase"),
        invert=param_bool(q, "invert"),
        since_ns=param_int(q, "since", minimum=None),
        until_ns=param_int(q, "until", minimum=None),
        hosts=tuple(q.getall("host", [])),
        sources=tuple(q.getall("source", [])),
    )
    query.matcher()  # InvalidArgument for a bad regex, with RE2's message
    expr = q.get("where", "").strip()
    return Filters(
        list(dict.fromkeys(topics)),
        query,
        wh.parse(expr) if expr else None,
        parse_levels(param_list(q, "level")),
    )


def _context(q: MultiMapping[str], name: str) -> int | None:
    value = param_int(q, name)
    if value is not None and value > MAX_CONTEXT:
        raise InvalidArgument(f"parameter {name}={value} exceeds {MAX_CONTEXT}")
    return value


def parse_search(q: MultiMapping[str], store: Store) -> SearchSpec:
    """The whole search request."""
    order = q.get("order", "asc").lower()
    if order not in ("asc", "desc"):
        raise InvalidArgument(f"parameter order={order!r} must be asc or desc")
    spec = SearchSpec(
        filters=parse_filters(q, store),
        limit=param_int(q, "limit", minimum=1),
        desc=order == "desc",
        count=param_bool(q, "count"),
        files=param_bool(q, "files"),
        before=_context(q, "before"),
        after=_context(q, "after"),
        progress=param_bool(q, "progress"),
    )
    if spec.count and spec.files:
        raise InvalidArgument("count=1 and files=1 exclude each other")
    if spec.context and spec.desc:
        raise InvalidArgument("context lines (before/after) need order=asc")
    return spec


# -- scanning (worker threads) ----------------------------------------------------------------


@dataclass
class _Outcome:
    stats: ScanStats = field(default_factory=ScanStats)
    matched: int = 0
    started: float = field(default_factory=time.monotonic)

    def stats_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "matched": self.matched,
            "batches_total": s.batches_total,
            "batches_read": s.batches_read,
            "bytes_read": s.bytes_read,
            "bytes_decompressed": s.bytes_decompressed,
            "errors": len(s.errors),
            "error_messages": [str(e) for e in s.errors[:_MAX_ERROR_MESSAGES]],
            "elapsed_ms": round((time.monotonic() - self.started) * 1000, 3),
        }

    def line(self, **extra: Any) -> bytes:
        return encode_line({"done": True, **extra, "stats": self.stats_json()})


class _Writer:
    """NDJSON output of one search on its scanning thread: buffered into chunks for the feed,
    flushed by size or age, with progress lines when asked. ``tick`` is called before every
    batch the scan reads, so output and progress flow even through long stretches without
    hits."""

    def __init__(self, feed: Feed, out: _Outcome, progress: float | None, bytes_total: int) -> None:
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
            self.add(
                encode_line(
                    {
                        "progress": {
                            "bytes_read": s.bytes_read,
                            "bytes_total": self.bytes_total,
                            "batches_read": s.batches_read,
                            "matched": self.out.matched,
                            "elapsed_ms": round((now - self.out.started) * 1000, 3),
                        }
                    }
                )
            )
            self.flush()

    def finish(self, last: bytes) -> None:
        self.buf += last
        self.flush()


def planned_bytes(store: Store, topics: list[str], query: Query) -> int:
    """Stored bytes of the batches a search may read: those in its time range (index only)."""
    lo, hi = query.ts_bounds()
    total = 0
    for topic in topics:
        for part in store.partitions(topic):
            for ref in part.refs(min_ts=lo, max_ts=hi):
                total += ref.segment.entry_bytes(ref.entry)[1]
    return total


def run_search(
    store: Store,
    spec: SearchSpec,
    feed: Feed,
    metrics: Metrics,
    workers: ScanWorkers | None = None,
) -> None:
    """Scan for ``spec`` and hand NDJSON chunks to ``feed`` (worker thread). Always ends the
    feed; stops early when the reader cancels. Big counts go to ``workers`` when given."""
    out = _Outcome()
    cancel = feed.cancelled
    outcome = "completed"
    metrics.searches_active.inc()
    try:
        f = spec.filters
        total = planned_bytes(store, f.topics, f.query) if spec.progress else 0
        w = _Writer(feed, out, spec.progress_s if spec.progress else None, total)
        if spec.count:
            _count(store, spec, w, workers)
        elif spec.files:
            _files(store, spec, w)
        elif spec.context:
            _groups(store, spec, w)
        else:
            _stream(store, spec, w)
        if cancel.is_set():
            outcome = "cancelled"
    except WharfError as exc:
        outcome = "failed"
        feed.put(encode_line({"error": str(exc)}))
    except Exception as exc:
        outcome = "failed"
        log.exception("search failed")
        feed.put(encode_line({"error": f"internal error: {type(exc).__name__}"}))
    finally:
        metrics.searches_active.dec()
        metrics.searches.labels(outcome).inc()
        metrics.scan_bytes.inc(out.stats.bytes_read)
        feed.close()


def _stream(store: Store, spec: SearchSpec, w: _Writer) -> None:
    cancel = w.feed.cancelled
    out = w.out
    f = spec.filters
    hits = iter_hits(
        store,
        f.topics,
        f.query,
        f.predicate,
        desc=spec.desc,
        cancel=cancel,
        stats=out.stats,
        tick=w.tick,
    )
    for hit in hits:
        if cancel.is_set() or not w.alive:
            return
        w.add(encode_hit(hit.topic, hit.partition, hit.offset, hit.record))
        out.matched += 1
        if spec.limit is not None and out.matched >= spec.limit:
            break
    if not cancel.is_set():
        w.finish(out.line())


class ContextHitOut(HitOut):
    """A record of a context answer: whether it matched, and its group (``--`` between)."""

    match: bool
    group: int


_encoder = msgspec.json.Encoder()


def _groups(store: Store, spec: SearchSpec, w: _Writer) -> None:
    cancel = w.feed.cancelled
    out = w.out
    f = spec.filters
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
            item = ContextHitOut(
                g.topic, g.partition, line.offset, r.ts, r.host, r.source, r.line, r.fields,
                r.level, line.match, number,
            )  # fmt: skip
            w.add(_encoder.encode(item) + b"\n")
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


def _count(store: Store, spec: SearchSpec, w: _Writer, workers: ScanWorkers | None) -> None:
    cancel = w.feed.cancelled
    out = w.out
    f = spec.filters
    where = f.predicate
    watch = Watch(cancel, w.tick)
    parts = [(topic, part) for topic in f.topics for part in store.partitions(topic)]
    if where is None:
        plain = [p for _, p in parts]
        counts = None
        if workers is not None:
            counts = workers.count_partitions(plain, f.query, stats=out.stats, watch=watch)
        if counts is None:
            counts = count_partitions(plain, f.query, stats=out.stats, watch=watch)
    else:
        counts = [
            sum(
                1 for h in scan(p, f.query, stats=out.stats, watch=watch) if where.matches(h.record)
            )
            for _, p in parts
        ]
    if cancel.is_set():
        return
    for (topic, part), n in zip(parts, counts, strict=True):
        out.matched += n
        w.add(encode_line({"topic": topic, "partition": part.number, "count": n}))
    w.finish(out.line(count=out.matched))


def _files(store: Store, spec: SearchSpec, w: _Writer) -> None:
    cancel = w.feed.cancelled
    out = w.out
    f = spec.filters
    where = f.predicate
    for topic in f.topics:
        found: dict[tuple[str, str], int] = {}
        for part in store.partitions(topic):
            for h in scan(part, f.query, stats=out.stats, watch=Watch(cancel, w.tick)):
                if where is None or where.matches(h.record):
                    key = (h.record.host, h.record.source)
                    found[key] = found.get(key, 0) + 1
            if cancel.is_set():
                return
        for (host, source), n in sorted(found.items()):
            out.matched += n
            w.add(encode_line({"topic": topic, "host": host, "source": source, "count": n}))
    w.finish(out.line(count=out.matched))


# -- the handler ------------------------------------------------------------------------------


async def handle_search(request: web.Request) -> web.StreamResponse:
    """``GET /v1/search``: NDJSON hits, then ``{"done": true, "stats": {...}}``."""
    app = request.app
    spec = parse_search(request.query, app[STORE])
    if spec.progress:
        spec = dataclasses.replace(spec, progress_s=app[PROGRESS_EVERY])
    loop = asyncio.get_running_loop()
    feed = Feed(loop)
    app[FEEDS].add(feed)
    worker = loop.run_in_executor(
        app[SCAN_POOL], run_search, app[STORE], spec, feed, app[METRICS], app[SCAN_WORKERS]
    )
    resp: web.StreamResponse | None = None
    try:
        resp = await start_ndjson(request)
        while True:
            chunk = await feed.get(CLIENT_CHECK_S)
            if chunk is None:
                if client_gone(request):
                    break
                continue
            if not chunk:
                await resp.write_eof()
                break
            await resp.write(chunk)
        return resp
    except ConnectionError:  # the client went away: nobody reads what we return
        return resp if resp is not None else web.Response()
    finally:
        feed.cancel()
        app[FEEDS].discard(feed)
        worker.add_done_callback(_log_failure)


def _log_failure(fut: Any) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("search worker failed", exc_info=fut.exception())
