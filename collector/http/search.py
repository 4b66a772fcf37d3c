"""``GET /v1/search``: the request parsed into ``SearchRequest``, the scan on the search pool,
its NDJSON rows streamed as they come (see ``collector.query.search``); a ``from`` cursor is
resolved with the filters, so a bad one is a 400 before the stream starts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from collector.http.keys import (
    FEEDS,
    IO_POOL,
    METRICS,
    PROGRESS_S,
    SCAN_POOL,
    SCAN_SLOTS,
    SEND_TIMEOUT_S,
    STORE,
)
from collector.http.stream import Feed, pump
from collector.query import paging
from collector.query.search import run_search
from collector.query.selection import Selection, select
from collector.storage.interface import Storage
from wharf.api import SearchRequest

log = logging.getLogger(__name__)


async def search(request: web.Request) -> web.StreamResponse:
    """NDJSON rows, then ``{"done": true, "stats": {...}}``."""
    app = request.app
    store = app[STORE]
    spec = SearchRequest.from_params(request.query.items())
    loop = asyncio.get_running_loop()
    # Compiling the patterns takes up to tens of milliseconds (RE2 budgets it): off the loop.
    # Errors here get a status, before the stream starts.
    selection, page = await loop.run_in_executor(app[IO_POOL], _prepare, store, spec)
    slots = app[SCAN_SLOTS]
    feed = Feed(loop, slots=slots)
    app[FEEDS].add(feed)
    worker = loop.run_in_executor(
        app[SCAN_POOL],
        slots.run,
        run_search,
        store,
        spec,
        selection,
        feed,
        app[METRICS],
        app[PROGRESS_S],
        page,
    )
    try:
        return await pump(request, feed, app[SEND_TIMEOUT_S])
    finally:
        feed.cancel()
        app[FEEDS].discard(feed)
        worker.add_done_callback(_log_failure)


def _prepare(store: Storage, spec: SearchRequest) -> tuple[Selection, paging.Page | None]:
    selection = select(store, spec)
    if not spec.cursor.strip():
        return selection, None
    desc = spec.order == "desc"
    return selection, paging.parse(store, spec.cursor, selection.topics, desc=desc)


def _log_failure(fut: Any) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("search worker failed", exc_info=fut.exception())
