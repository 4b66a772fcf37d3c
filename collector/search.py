"""Search across topics and partitions: filters from query parameters, a merged stream of hits
in time order, and the ``GET /v1/search`` handler that runs it off the event loop.

Results come in exact time order (newest first with ``order=desc``), merged across partitions
and topics by ``collector.merge``, which reads a few batches at a time in the order their index
time ranges demand: ``limit=N`` reads little more than the batches holding those N records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from multidict import MultiMapping

from collector.http_util import (
    CHUNK_BYTES,
    CLIENT_CHECK_S,
    FEEDS,
    METRICS,
    SCAN_POOL,
    STORE,
    Feed,
    client_gone,
    encode_hit,
    encode_line,
    param_bool,
    param_int,
    param_list,
    start_ndjson,
)
from collector.merge import iter_hits, watched
from collector.metrics import Metrics
from collector.storage import Store
from collector.storage.scan import ScanStats, count, scan
from wharf import where as wh
from wharf.errors import InvalidArgument, WharfError
from wharf.query import Query

log = logging.getLogger(__name__)

# A chunk is handed to the loop after this long even if small, so sparse hits arrive promptly.
_FLUSH_S: Final = 0.1
# At most this many corrupt-batch messages go into the final stats line (all are counted).
_MAX_ERROR_MESSAGES: Final = 20


@dataclass(frozen=True)
class Filters:
    """What search and tail select: topics, the line query and an optional ``where``."""

    topics: list[str]
    query: Query
    where: wh.Where | None


@dataclass(frozen=True)
class SearchSpec:
    """A parsed ``/v1/search`` request."""

    filters: Filters
    limit: int | None
    desc: bool
    count: bool


def parse_filters(q: MultiMapping[str], store: Store) -> Filters:
    """Topics, pattern, flags, globs, time range and ``where`` from query parameters.

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
    return Filters(list(dict.fromkeys(topics)), query, wh.parse(expr) if expr else None)


def parse_search(q: MultiMapping[str], store: Store) -> SearchSpec:
    """The whole search request."""
    order = q.get("order", "asc").lower()
    if order not in ("asc", "desc"):
        raise InvalidArgument(f"parameter order={order!r} must be asc or desc")
    return SearchSpec(
        filters=parse_filters(q, store),
        limit=param_int(q, "limit", minimum=1),
        desc=order == "desc",
        count=param_bool(q, "count"),
    )


# -- scanning (worker threads) ----------------------------------------------------------------


@dataclass
class _Outcome:
    stats: ScanStats = field(default_factory=ScanStats)
    matched: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, **extra: Any) -> bytes:
        s = self.stats
        return encode_line(
            {
                "done": True,
                **extra,
                "stats": {
                    "matched": self.matched,
                    "batches_total": s.batches_total,
                    "batches_read": s.batches_read,
                    "bytes_read": s.bytes_read,
                    "bytes_decompressed": s.bytes_decompressed,
                    "errors": len(s.errors),
                    "error_messages": [str(e) for e in s.errors[:_MAX_ERROR_MESSAGES]],
                    "elapsed_ms": round((time.monotonic() - self.started) * 1000, 3),
                },
            }
        )


def run_search(store: Store, spec: SearchSpec, feed: Feed, metrics: Metrics) -> None:
    """Scan for ``spec`` and hand NDJSON chunks to ``feed`` (worker thread). Always ends the
    feed; stops early when the reader cancels."""
    out = _Outcome()
    cancel = feed.cancelled
    outcome = "completed"
    metrics.searches_active.inc()
    try:
        if spec.count:
            _count(store, spec, feed, out)
        else:
            _stream(store, spec, feed, out)
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


def _stream(store: Store, spec: SearchSpec, feed: Feed, out: _Outcome) -> None:
    cancel = feed.cancelled
    buf = bytearray()
    flushed = time.monotonic()
    f = spec.filters
    hits = iter_hits(
        store, f.topics, f.query, f.where, desc=spec.desc, cancel=cancel, stats=out.stats
    )
    for hit in hits:
        if cancel.is_set():
            return
        buf += encode_hit(hit.topic, hit.partition, hit.offset, hit.record)
        out.matched += 1
        now = time.monotonic()
        if len(buf) >= CHUNK_BYTES or now - flushed >= _FLUSH_S:
            if not feed.put(bytes(buf)):
                return
            buf.clear()
            flushed = now
        if spec.limit is not None and out.matched >= spec.limit:
            break
    buf += out.line()
    feed.put(bytes(buf))


def _count(store: Store, spec: SearchSpec, feed: Feed, out: _Outcome) -> None:
    cancel = feed.cancelled
    f = spec.filters
    lines = bytearray()
    for topic in f.topics:
        for part in store.partitions(topic):
            if f.where is None:
                n = count(watched(part, cancel), f.query, stats=out.stats)
            else:
                where = f.where
                n = sum(
                    1
                    for h in scan(watched(part, cancel), f.query, stats=out.stats)
                    if where.matches(h.record)
                )
            if cancel.is_set():
                return
            out.matched += n
            lines += encode_line({"topic": topic, "partition": part.number, "count": n})
    lines += out.line(count=out.matched)
    feed.put(bytes(lines))


# -- the handler ------------------------------------------------------------------------------


async def handle_search(request: web.Request) -> web.StreamResponse:
    """``GET /v1/search``: NDJSON hits, then ``{"done": true, "stats": {...}}``."""
    app = request.app
    spec = parse_search(request.query, app[STORE])
    loop = asyncio.get_running_loop()
    feed = Feed(loop)
    app[FEEDS].add(feed)
    worker = loop.run_in_executor(app[SCAN_POOL], run_search, app[STORE], spec, feed, app[METRICS])
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
