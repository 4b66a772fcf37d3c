"""``GET /v1/tail``: the last ``n`` matching records, then new ones as they become durable.

Every few idle seconds a tail sends ``{"heartbeat": true, "cursor": "t:0:120,t:1:55"}`` (so
proxies keep the stream open, and so a client can resume with ``from=``; see
``collector.query.tail``). Without ``topic=`` it tails every topic, including those created
while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from aiohttp import web

from collector.http.keys import (
    CLOSING,
    HEARTBEAT_S,
    IO_POOL,
    METRICS,
    SEND_TIMEOUT_S,
    STORE,
    TAIL_HUB,
)
from collector.http.stream import CLIENT_CHECK_S, client_gone, send, start_ndjson
from collector.query.search import error_line
from collector.query.selection import select
from collector.query.tail import (
    backfill,
    format_cursor,
    parse_cursor,
    read_new,
    start_positions,
    track_topics,
)
from wharf.api import Heartbeat, TailRequest, encode_row
from wharf.errors import UnknownTopic, WharfError


async def tail(request: web.Request) -> web.StreamResponse:
    """``GET /v1/tail``: the last ``n`` matching records, then new ones as they are acked.

    Without ``topic=`` it tails every topic, including those created while it runs."""
    app = request.app
    store = app[STORE]
    req = TailRequest.from_params(request.query.items())
    # off the loop: compiling the patterns takes up to tens of milliseconds
    filters = await asyncio.get_running_loop().run_in_executor(app[IO_POOL], select, store, req)
    every_topic = not req.topics
    n = req.n
    resume = parse_cursor(req.cursor, filters.topics)
    heartbeat_s = app[HEARTBEAT_S]
    positions = start_positions(store, filters.topics, resume)
    hub, closing, pool = app[TAIL_HUB], app[CLOSING], app[IO_POOL]
    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    # before the first read: no commit can be missed
    waiter = hub.register(None if every_topic else filters.topics)
    app[METRICS].tails_active.inc()
    resp: web.StreamResponse | None = None
    try:
        resp = await start_ndjson(request)

        async def write(data: bytes) -> None:
            assert resp is not None
            await send(request, resp, data, app[SEND_TIMEOUT_S])

        if n and not resume:
            await write(
                await loop.run_in_executor(pool, backfill, store, filters, positions, n, cancel)
            )
        await write(encode_row(Heartbeat(True, format_cursor(positions))))
        next_beat = loop.time() + heartbeat_s
        while not closing.is_set():
            waiter.event.clear()
            if every_topic:
                positions = track_topics(store, positions)
            try:
                chunk, positions, more = await loop.run_in_executor(
                    pool, read_new, store, filters, positions, cancel
                )
            except UnknownTopic:
                if not every_topic:
                    raise
                continue  # a topic went away under us: track_topics drops it next turn
            if chunk:
                await write(chunk)
            if more:
                continue
            while not waiter.event.is_set() and not closing.is_set():
                if client_gone(request):
                    return resp
                now = loop.time()
                if now >= next_beat:
                    await write(encode_row(Heartbeat(True, format_cursor(positions))))
                    next_beat = now + heartbeat_s
                wait = min(CLIENT_CHECK_S, max(0.0, next_beat - now))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await waiter.event.wait()
        return resp
    except ConnectionError:  # the client went away
        return resp if resp is not None else web.Response()
    except WharfError as exc:  # e.g. the topic was deleted while tailed
        if resp is None:
            raise
        with contextlib.suppress(ConnectionError):
            await send(request, resp, error_line(exc), app[SEND_TIMEOUT_S])
        return resp
    finally:
        cancel.set()
        hub.unregister(waiter)
        app[METRICS].tails_active.dec()
