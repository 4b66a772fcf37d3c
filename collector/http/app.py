"""The collector's HTTP API: every route, in one place, and the application's lifetime.

    GET    /                              the web console's page shell (collector.console;
                                           served without a token: it holds no data)
    GET    /static/{name}                 the console's ES modules, style sheet and icon
    GET    /healthz                       {"status": "ok"} once the store takes writes, else 503
    GET    /metrics                       Prometheus text
    GET    /v1/status                     {"status", "version", "uptime_s", "topics": [{"name",
                                           "partitions", "records", "bytes", "line_bytes",
                                           "compression_ratio", "min_ts", "max_ts"}], "ingest":
                                           {"window_s", "records", "records_per_s", "topics"},
                                           "shippers": [{"peer", "producer_id", ...}] | null,
                                           "inputs": [{"name", "type", "protocol", "listen",
                                           "port", "topic", "received", "stored", "bytes",
                                           "malformed", "dropped", "refused", "connections",
                                           "pending_bytes"}]}
    GET    /v1/topics                     TopicList
    POST   /v1/topics                     CreateTopic -> 201 TopicInfo
    GET    /v1/topics/{t}                 TopicSizes (end_offset: next to write; line_bytes:
                                           the lines' raw size, newlines included, exact)
    DELETE /v1/topics/{t}                 {"deleted": t}
    POST   /v1/topics/{t}/compact         -> CompactResult, once every sealed segment of the
                                           topic is compacted (its active ones rolled first)
    GET    /v1/topics/{t}/partitions/{p}/records   ConsumeRequest -> NDJSON Hit rows, then
                                           ConsumeEnd
    GET    /v1/topics/{t}/partitions/{p}/offset    OffsetRequest -> OffsetAnswer
    GET    /v1/topics/{t}/partitions/{p}/context   RecordContextRequest -> NDJSON ContextHit
                                           rows (the record at offset, match true, and its
                                           host and source neighbours), then Done
    GET    /v1/search                     SearchRequest -> NDJSON Hit | ContextHit |
                                           PartitionCount | FileCount | Progress rows, then Done
                                           (its "cursor" when limit cut the stream: from= it
                                           for the next page)
    GET    /v1/histogram                  HistogramRequest -> Histogram: exact records per
                                           time bucket stacked by level, from the columns
    GET    /v1/facets                     FacetsRequest -> Facets: exact top values of one
                                           field over every match (distinct values capped)
    GET    /v1/tail                       TailRequest -> NDJSON: last n Hits, then live ones;
                                           idle Heartbeat rows with the cursor
    GET    /v1/groups                     GroupList
    GET    /v1/groups/{g}                 GroupInfo
    POST   /v1/groups/{g}/commit          CommitRequest -> GroupInfo
    POST   /v1/groups/{g}/reset           ResetRequest -> GroupInfo

The types are in ``wharf.api``; times are nanoseconds since the epoch. Every answer is JSON
(streams are NDJSON); every error is ``{"error", "code", "retriable"}`` with the status the error
table gives (``collector.http.middleware``), never a traceback; a stream that fails after it
started ends with such a line. Scans and file I/O run on thread pools, so a long search never
stalls ingest or another client.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from aiohttp import web

from collector import groups
from collector.config import CollectorConfig
from collector.http import (
    console,
    context,
    facets,
    health,
    histogram,
    records,
    search,
    tail,
    topics,
)
from collector.http import groups as group_routes
from collector.http.keys import (
    CLOSING,
    CONFIG,
    DATA_DIR,
    FEEDS,
    GROUPS,
    HEARTBEAT_S,
    INGEST_RATE,
    INPUTS,
    IO_POOL,
    METRICS,
    PROGRESS_S,
    SCAN_POOL,
    SCAN_SLOTS,
    SEND_TIMEOUT_S,
    SESSIONS,
    STARTED_NS,
    STORE,
    TAIL_HUB,
    SessionsProvider,
)
from collector.http.middleware import auth_mw, errors_mw, metrics_mw
from collector.http.stream import Slots
from collector.ingest import IngestServer
from collector.metrics import Metrics
from collector.query import search as search_engine
from collector.query.describe import IngestRate
from collector.query.tail import TailHub
from collector.storage.interface import GroupOffsets, Storage

__all__ = ["SessionsProvider", "ingest_sessions", "make_app"]

# Searches scanning at once; more wait their turn (``[search] max_running`` bounds how many
# are open). Each takes about one core while it decompresses.
SEARCH_WORKERS: Final = 4
# Short reads: tail catch-up, consume, group files, topic admin.
IO_WORKERS: Final = 8
# An idle tail sends a heartbeat this often.
DEFAULT_HEARTBEAT_S: Final = 5.0


def _routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", console.index)
    r.add_get("/static/{name}", console.static)
    r.add_get("/healthz", health.healthz)
    r.add_get("/metrics", health.metrics)
    r.add_get("/v1/status", health.status)
    r.add_get("/v1/topics", topics.list_topics)
    r.add_post("/v1/topics", topics.create_topic)
    r.add_get("/v1/topics/{topic}", topics.describe_topic)
    r.add_delete("/v1/topics/{topic}", topics.delete_topic)
    r.add_post("/v1/topics/{topic}/compact", topics.compact_topic)
    r.add_get("/v1/topics/{topic}/partitions/{partition}/records", records.consume)
    r.add_get("/v1/topics/{topic}/partitions/{partition}/offset", records.offset_for_time)
    r.add_get("/v1/topics/{topic}/partitions/{partition}/context", context.record_context)
    r.add_get("/v1/search", search.search)
    r.add_get("/v1/histogram", histogram.histogram)
    r.add_get("/v1/facets", facets.facets)
    r.add_get("/v1/tail", tail.tail)
    r.add_get("/v1/groups", group_routes.list_groups)
    r.add_get("/v1/groups/{group}", group_routes.describe_group)
    r.add_post("/v1/groups/{group}/commit", group_routes.commit)
    r.add_post("/v1/groups/{group}/reset", group_routes.reset)


def make_app(
    store: Storage,
    config: CollectorConfig,
    metrics: Metrics,
    *,
    data_dir: Path | None = None,
    groups_offsets: GroupOffsets | None = None,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    sessions: SessionsProvider | None = None,
    inputs: SessionsProvider | None = None,
    progress_s: float = search_engine.PROGRESS_S,
) -> web.Application:
    """The HTTP API around an open ``store``. Run it with ``web.AppRunner``; the store's
    lifetime stays the caller's. ``data_dir`` holds the consumer groups' files (default: the
    config's); ``groups_offsets`` keeps them elsewhere (the cluster's KV bucket). ``sessions`` lists the connected shippers for ``/v1/status`` (called on the event
    loop; ``ingest_sessions(ingest)`` makes one); without it the status says
    ``"shippers": null``. ``inputs`` lists the network inputs with their counts the same way
    (``Inputs.status``); without it the status says ``"inputs": []``."""
    app = web.Application(middlewares=[metrics_mw, errors_mw, auth_mw])
    directory = data_dir if data_dir is not None else Path(config.data_dir)
    app[STORE] = store
    app[CONFIG] = config
    app[METRICS] = metrics
    app[DATA_DIR] = directory
    app[GROUPS] = groups_offsets if groups_offsets is not None else groups.GroupStore(directory)
    app[SCAN_POOL] = ThreadPoolExecutor(config.search.max_running, thread_name_prefix="http-search")
    app[SCAN_SLOTS] = Slots(SEARCH_WORKERS)
    app[SEND_TIMEOUT_S] = config.api.send_timeout_s
    app[IO_POOL] = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="http-io")
    app[FEEDS] = set()
    app[CLOSING] = asyncio.Event()
    app[TAIL_HUB] = TailHub()
    app[HEARTBEAT_S] = heartbeat_s
    app[PROGRESS_S] = progress_s
    app[INGEST_RATE] = IngestRate()
    app[SESSIONS] = sessions
    app[INPUTS] = inputs
    app[STARTED_NS] = time.time_ns()
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    _routes(app.router)
    return app


def ingest_sessions(ingest: IngestServer) -> SessionsProvider:
    """The sessions provider for ``make_app(..., sessions=...)``: the ingest server's open
    connections (``IngestServer.sessions``, read on the event loop like the server itself)."""
    return ingest.sessions


async def _startup(app: web.Application) -> None:
    app[TAIL_HUB].attach(app[STORE], asyncio.get_running_loop())
    app[INGEST_RATE].attach(app[STORE])


async def _shutdown(app: web.Application) -> None:
    # Before aiohttp waits for handlers to finish: end every stream now.
    app[CLOSING].set()
    app[TAIL_HUB].close()
    feeds = app[FEEDS]
    for feed in list(feeds):
        feed.cancel()


async def _cleanup(app: web.Application) -> None:
    await _shutdown(app)
    app[INGEST_RATE].detach(app[STORE])  # the store outlives the app
    for pool in (app[SCAN_POOL], app[IO_POOL]):
        await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
