"""Scans answered by one JSON object (``/v1/histogram``, ``/v1/facets``): run like a search, on
the search pool holding a scan slot (``SCAN_SLOTS``), off the event loop, and counted in the
search metrics. aiohttp does not cancel a handler whose client went away, so the handler
watches the connection while the scan runs and tells the scan to stop when the client is gone
or the server shuts down: a dropped zoom never keeps a core busy."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web

from collector.http.keys import CLOSING, METRICS, SCAN_POOL, SCAN_SLOTS
from collector.http.stream import CLIENT_CHECK_S, client_gone
from collector.metrics import Metrics
from wharf.api import SearchStats


class _Answer(Protocol):
    @property
    def stats(self) -> SearchStats: ...


A = TypeVar("A", bound=_Answer)


async def run_scan(request: web.Request, fn: Callable[..., A], *args: Any) -> A:
    """``fn(*args, cancel)`` on the search pool (see the module docstring)."""
    app = request.app
    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    slots, metrics = app[SCAN_SLOTS], app[METRICS]

    def work() -> A:
        answer: A = slots.run(_counted, metrics, fn, *args, cancel)
        return answer

    job = loop.run_in_executor(app[SCAN_POOL], work)
    try:
        while True:
            done, _ = await asyncio.wait({job}, timeout=CLIENT_CHECK_S)
            if done:
                return job.result()
            if client_gone(request) or app[CLOSING].is_set():
                cancel.set()
                return await job  # soon: the scan checks before every batch
    finally:
        cancel.set()


def _counted(metrics: Metrics, fn: Callable[..., A], *args: Any) -> A:
    cancel: threading.Event = args[-1]
    metrics.searches_active.inc()
    outcome = "failed"
    try:
        answer = fn(*args)
        outcome = "cancelled" if cancel.is_set() else "completed"
        metrics.scan_bytes.inc(answer.stats.bytes_read)
        return answer
    finally:
        metrics.searches_active.dec()
        metrics.searches.labels(outcome).inc()
