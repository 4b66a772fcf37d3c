"""The collector's HTTP API (aiohttp): topics, search, live tail, consume, consumer groups,
``/metrics`` and ``/healthz``.

    GET    /healthz                       {"status": "ok"} once the store takes writes, else 503
    GET    /metrics                       Prometheus text
    GET    /v1/status                     {"status", "version", "uptime_s", "topics": [{"name",
                                           "partitions", "records", "bytes", "line_bytes",
                                           "compression_ratio", "min_ts", "max_ts"}], "ingest":
                                           {"window_s", "records", "records_per_s", "topics"},
                                           "shippers": [{"peer", "producer_id", ...}] | null}
    GET    /v1/topics                     {"topics": [topic, ...]}
    POST   /v1/topics                     {"name", "partitions"?, "retention_ms"?, ...} -> 201 topic
    GET    /v1/topics/{t}                 {"name", "config", "records", "bytes", "line_bytes",
                                           "compression_ratio", "min_ts", "max_ts", "partitions":
                                           [{"partition", "start_offset", "end_offset", "bytes",
                                           "line_bytes", "segments", "min_ts", "max_ts"}]}
                                           (end_offset: next to write; line_bytes: the lines'
                                           raw size, newlines included, exact)
    DELETE /v1/topics/{t}                 {"deleted": t}
    GET    /v1/topics/{t}/partitions/{p}/records?offset=&max_bytes=
                                          NDJSON records, then {"next_offset", "end_offset"}
    GET    /v1/topics/{t}/partitions/{p}/offset?time=NS
                                          {"offset": first offset at or after the time, ...}
    GET    /v1/search?topic=&q=&fixed=&icase=&invert=&host=&source=&since=&until=&where=
                  &level=&limit=&order=asc|desc&count=&files=&before=&after=&progress=
                                          NDJSON records in time order, then {"done": true,
                                           "stats": {...}}; with count=1, {"topic",
                                           "partition", "count"} lines and {"done", "count"};
                                           files=1, {"topic", "host", "source", "count"};
                                           before/after: context (see collector.search);
                                           progress=1, {"progress": {...}} lines as it scans
    GET    /v1/tail?(search filters)&n=&from=topic:p:offset,...
                                          NDJSON: last n records, then live ones; idle
                                           {"heartbeat": true, "cursor": ...}
    GET    /v1/groups                     {"groups": [name, ...]}
    GET    /v1/groups/{g}                 {"group", "offsets": [{"topic", "partition",
                                           "committed", "start_offset", "end_offset", "lag"}],
                                           "lag"}
    POST   /v1/groups/{g}/commit          {"topic", "partition", "offset"} -> the group
    POST   /v1/groups/{g}/reset           {"topic", "partition"?, "to_offset" | "to_time" |
                                           "to": "earliest"|"latest"} -> the group

Times are nanoseconds since the epoch. Every answer is JSON (streams are NDJSON); every error is
``{"error": "..."}`` with a 4xx status saying whose fault it is (500 only for damaged data on our
side), never a traceback; a stream that fails after it started ends with an ``{"error"}`` line.
Scans and file I/O run on thread pools, so a long search never stalls ingest or another client.

Auth (``collector.toml`` ``[auth]``): with read tokens set, every ``/v1`` request needs
``Authorization: Bearer <token>`` holding a read or a write token; topic creation and deletion
need a write token (or, when only read tokens are configured, a read token). Group commits and
resets are reads in this sense: a consumer owns its position. ``/healthz`` and ``/metrics`` are
open. A missing token is 401, a wrong one 403.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collector import groups, offsets_api, search, tail
from collector import status_api as st
from collector.config import CollectorConfig
from collector.http_util import (
    CLOSING,
    CONFIG,
    FEEDS,
    IO_POOL,
    METRICS,
    NDJSON,
    SCAN_POOL,
    SCAN_WORKERS,
    STORE,
    ApiError,
    encode_hit,
    encode_line,
    error_response,
    param_int,
    status_for,
)
from collector.metrics import Metrics
from collector.storage import Store, TopicConfig
from collector.storage.workers import ScanWorkers
from wharf.errors import InvalidArgument, WharfError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Concurrent searches; more wait their turn. Each takes about one core while it decompresses.
SEARCH_WORKERS: Final = 4
# Short reads: tail catch-up, consume, group files, topic admin.
IO_WORKERS: Final = 8
# Consume reads stop near this many stored bytes by default, and never go past the cap (the
# JSON answer is several times larger than the compressed batches).
DEFAULT_CONSUME_BYTES: Final = 1 << 20
MAX_CONSUME_BYTES: Final = 16 << 20
# /healthz waits this long for the store's committer to answer before saying 503.
_HEALTH_TIMEOUT_S: Final = 5.0


def make_app(
    store: Store,
    config: CollectorConfig,
    metrics: Metrics,
    *,
    heartbeat_s: float = tail.DEFAULT_HEARTBEAT_S,
    sessions: st.SessionsProvider | None = None,
    progress_s: float = search.PROGRESS_S,
    scan_workers: ScanWorkers | None = None,
) -> web.Application:
    """The HTTP API around an open ``store``. Run it with ``web.AppRunner``; the store's
    lifetime stays the caller's. ``sessions`` lists the connected shippers for
    ``/v1/status`` (called on the event loop; ``collector.status_api.ingest_sessions(ingest)``
    makes one); without it the status says ``"shippers": null``. ``scan_workers`` count
    ``grep -c`` scans on every core (their lifetime stays the caller's too)."""
    app = web.Application(middlewares=[_metrics_mw, _errors_mw, _auth_mw])
    app[STORE] = store
    app[CONFIG] = config
    app[METRICS] = metrics
    app[SCAN_POOL] = ThreadPoolExecutor(SEARCH_WORKERS, thread_name_prefix="http-search")
    app[SCAN_WORKERS] = scan_workers
    app[IO_POOL] = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="http-io")
    app[FEEDS] = set()
    app[CLOSING] = asyncio.Event()
    app[tail.HUB] = tail.TailHub()
    app[tail.HEARTBEAT_S] = heartbeat_s
    app[search.PROGRESS_EVERY] = progress_s
    app[groups.GROUPS] = groups.GroupStore(store.data_dir)
    app[st.LINE_BYTES] = st.LineBytes()
    app[st.INGEST_RATE] = st.IngestRate()
    app[st.SESSIONS] = sessions
    app[st.STARTED_NS] = time.time_ns()
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    r = app.router
    r.add_get("/healthz", _healthz)
    r.add_get("/metrics", _metrics)
    r.add_get("/v1/status", _status)
    r.add_get("/v1/topics", _list_topics)
    r.add_post("/v1/topics", _create_topic)
    r.add_get("/v1/topics/{topic}", _describe_topic)
    r.add_delete("/v1/topics/{topic}", _delete_topic)
    r.add_get("/v1/topics/{topic}/partitions/{partition}/records", _consume)
    r.add_get("/v1/search", search.handle_search)
    r.add_get("/v1/tail", tail.handle_tail)
    r.add_get("/v1/groups", groups.handle_list)
    r.add_get("/v1/groups/{group}", groups.handle_describe)
    r.add_post("/v1/groups/{group}/commit", groups.handle_commit)
    r.add_post("/v1/groups/{group}/reset", groups.handle_reset)
    offsets_api.register(app)
    return app


async def _startup(app: web.Application) -> None:
    app[tail.HUB].attach(app[STORE], asyncio.get_running_loop())
    app[st.INGEST_RATE].attach(app[STORE])


async def _shutdown(app: web.Application) -> None:
    # Before aiohttp waits for handlers to finish: end every stream now.
    app[CLOSING].set()
    app[tail.HUB].close()
    feeds = app[FEEDS]
    for feed in list(feeds):
        feed.cancel()


async def _cleanup(app: web.Application) -> None:
    await _shutdown(app)
    app[st.INGEST_RATE].detach(app[STORE])  # the store outlives the app
    for pool in (app[SCAN_POOL], app[IO_POOL]):
        await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)


async def _in_pool(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(request.app[IO_POOL], fn, *args)


# -- middlewares ----------------------------------------------------------------------------


@web.middleware
async def _metrics_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    request.app[METRICS].http_requests.labels(name, str(resp.status)).inc()
    return resp


@web.middleware
async def _errors_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, f"{message}: {request.method} {request.path}")
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers)
    except WharfError as exc:
        return error_response(status_for(exc), str(exc))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return error_response(400, f"invalid request body: {exc}")
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error: {type(exc).__name__}")


def _needs_write(request: web.Request) -> bool:
    return request.method in ("POST", "PUT", "DELETE") and request.path.startswith("/v1/topics")


def _matches(token: str, tokens: list[str]) -> bool:
    given = token.encode()
    found = False
    for t in tokens:  # every token compared, in constant time each
        found |= hmac.compare_digest(given, t.encode())
    return found


@web.middleware
async def _auth_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    auth = request.app[CONFIG].auth
    write = _needs_write(request)
    if write and auth.write_tokens:
        allowed = auth.write_tokens
    elif auth.read_tokens:
        allowed = [*auth.read_tokens, *auth.write_tokens] if not write else auth.read_tokens
    else:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "authentication required: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="wharf"'},
        )
    if not _matches(token.strip(), allowed):
        what = "a write token" if write and auth.write_tokens else "a valid token"
        raise ApiError(403, f"forbidden: this request needs {what}")
    return await handler(request)


# -- health and metrics ---------------------------------------------------------------------


async def _health(request: web.Request) -> tuple[bool, str | None]:
    """Whether the store's committer takes work (so an append would be acknowledged)."""
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_S):
            await _in_pool(request, request.app[STORE].flush)
    except TimeoutError:
        return False, "store not answering"
    except WharfError as exc:
        return False, str(exc)
    return True, None


async def _healthz(request: web.Request) -> web.Response:
    """200 once the store's committer takes work (so an append would be acknowledged)."""
    ok, error = await _health(request)
    if not ok:
        return web.json_response({"status": "unavailable", "error": error}, status=503)
    return web.json_response({"status": "ok"})


async def _status(request: web.Request) -> web.Response:
    """Health, topics with sizes, the ingest rate and connected shippers, in one answer (200
    even when unhealthy: the body says so, and a status page must still render)."""
    app = request.app
    healthy = await _health(request)
    provider = app[st.SESSIONS]
    shippers = list(provider()) if callable(provider) else None  # on the loop, like ingest
    body = await _in_pool(
        request,
        st.status_json,
        app[STORE],
        app[st.LINE_BYTES],
        app[st.INGEST_RATE],
        app[st.STARTED_NS],
        healthy,
    )
    body["shippers"] = shippers
    registry = app[METRICS].registry
    for key, metric in (
        ("searches_active", "wharf_http_searches_active"),
        ("tails_active", "wharf_http_tails_active"),
    ):
        body[key] = int(registry.get_sample_value(metric) or 0)
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- topics ---------------------------------------------------------------------------------


class CreateTopic(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/topics``: a name, and settings overriding the collector's topic defaults."""

    name: str
    partitions: int | None = None
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int | None = None
    segment_ms: int | None = None


def topic_json(store: Store, name: str, lines: st.LineBytes | None = None) -> dict[str, Any]:
    """The public shape of a topic: ``{"name", "partitions": [...], "config": {...}}``, with
    sizes and the compression ratio when ``lines`` is given (reads batch headers once: call
    it off the loop)."""
    data = msgspec.to_builtins(store.describe(name))
    assert isinstance(data, dict)
    if lines is not None:
        sizes = st.topic_sizes(store, lines, name)
        for part, extra in zip(data["partitions"], sizes.pop("partitions"), strict=False):
            part["line_bytes"] = extra["line_bytes"]
        data.update({k: v for k, v in sizes.items() if k != "name"})
    return data


def _all_topics(store: Store, lines: st.LineBytes) -> list[dict[str, Any]]:
    topics = []
    for name in store.topics():
        try:
            topics.append(topic_json(store, name, lines))
        except WharfError:  # deleted between the listing and its describe
            continue
    return topics


async def _list_topics(request: web.Request) -> web.Response:
    app = request.app
    topics = await _in_pool(request, _all_topics, app[STORE], app[st.LINE_BYTES])
    return web.json_response({"topics": topics})


async def _describe_topic(request: web.Request) -> web.Response:
    app = request.app
    name = request.match_info["topic"]
    return web.json_response(
        await _in_pool(request, topic_json, app[STORE], name, app[st.LINE_BYTES])
    )


async def _create_topic(request: web.Request) -> web.Response:
    app = request.app
    req = msgspec.json.decode(await request.read(), type=CreateTopic)
    settings = msgspec.structs.asdict(app[CONFIG].topic_defaults)
    settings.update({k: v for k, v in msgspec.structs.asdict(req).items() if v is not None})
    del settings["name"]
    try:
        config = msgspec.convert(settings, TopicConfig)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"topic {req.name!r}: {exc}") from None
    store = app[STORE]
    await _in_pool(request, store.create_topic, req.name, config)
    return web.json_response(topic_json(store, req.name), status=201)


async def _delete_topic(request: web.Request) -> web.Response:
    name = request.match_info["topic"]
    await _in_pool(request, request.app[STORE].delete_topic, name)
    return web.json_response({"deleted": name})


# -- consume --------------------------------------------------------------------------------


def _read_records(store: Store, topic: str, partition: int, offset: int, max_bytes: int) -> bytes:
    part = store.partition(topic, partition)
    out = bytearray()
    nxt = offset
    for batch in part.read(offset, max_bytes):
        base = batch.header.base_offset
        skip = max(0, offset - base)
        for i, rec in enumerate(batch.records(range(skip, len(batch))), start=skip):
            out += encode_hit(topic, partition, base + i, rec)
        nxt = base + len(batch)
    out += encode_line({"next_offset": nxt, "end_offset": part.durable_offset})
    return bytes(out)


async def _consume(request: web.Request) -> web.Response:
    """Records from ``offset`` (default: the partition start) up to about ``max_bytes`` of
    stored batches, then ``{"next_offset": N, "end_offset": E}``."""
    store = request.app[STORE]
    topic = request.match_info["topic"]
    raw = request.match_info["partition"]
    if not raw.isdigit():
        raise InvalidArgument(f"partition {raw!r} is not a non-negative integer")
    partition = int(raw)
    part = store.partition(topic, partition)
    offset = param_int(request.query, "offset")
    if offset is None:
        offset = part.start_offset
    max_bytes = param_int(request.query, "max_bytes", DEFAULT_CONSUME_BYTES, minimum=1)
    assert max_bytes is not None
    if max_bytes > MAX_CONSUME_BYTES:
        raise InvalidArgument(f"parameter max_bytes={max_bytes} exceeds {MAX_CONSUME_BYTES}")
    body = await _in_pool(request, _read_records, store, topic, partition, offset, max_bytes)
    return web.Response(body=body, headers={"Content-Type": NDJSON})
