"""``/healthz``, ``/metrics`` and ``/v1/status``."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collector.http.keys import (
    DATA_DIR,
    INGEST_RATE,
    INPUTS,
    METRICS,
    SESSIONS,
    STARTED_NS,
    STORE,
    in_pool,
)
from collector.query.describe import status_json
from wharf.api import NoParams
from wharf.errors import WharfError

log = logging.getLogger(__name__)

# /healthz waits this long for the storage to answer before saying 503.
_HEALTH_TIMEOUT_S: Final = 5.0


async def _check(request: web.Request) -> tuple[str, str | None]:
    """``("ok", None)``; ``("degraded", why)`` when the storage answers but refuses some writes
    (a partition offline after a failed write: a full disk); ``("unavailable", why)`` when it
    does not answer or refuses everything."""
    store = request.app[STORE]
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_S):
            await in_pool(request, store.flush)
            problems = await in_pool(request, store.health)
    except TimeoutError:
        return "unavailable", "store not answering"
    except WharfError as exc:
        return "unavailable", str(exc)
    if problems:
        return "degraded", "; ".join(problems)
    return "ok", None


async def _health(request: web.Request) -> tuple[bool, str | None]:
    """Whether the storage takes work (so an append would be acknowledged)."""
    state, error = await _check(request)
    return state == "ok", error


async def healthz(request: web.Request) -> web.Response:
    """200 once the storage takes writes, else 503 saying why: ``"status": "unavailable"``
    (nothing is written) or ``"degraded"`` (some partitions refuse writes; the error names
    them). A load balancer or a shipper's failover then sends writes elsewhere."""
    state, error = await _check(request)
    if state != "ok":
        return web.json_response({"status": state, "error": error}, status=503)
    return web.json_response({"status": "ok"})


async def status(request: web.Request) -> web.Response:
    """Health, topics with sizes, the ingest rate and connected shippers, in one answer (200
    even when unhealthy: the body says so, and a status page must still render)."""
    NoParams.from_params(request.query.items())
    app = request.app
    healthy = await _health(request)
    provider = app[SESSIONS]
    shippers = list(provider()) if provider is not None else None  # on the loop, like ingest
    body = await in_pool(
        request,
        status_json,
        app[STORE],
        app[DATA_DIR],
        app[INGEST_RATE],
        app[STARTED_NS],
        healthy,
    )
    body["shippers"] = shippers
    inputs = app[INPUTS]
    body["inputs"] = list(inputs()) if inputs is not None else []
    registry = app[METRICS].registry
    for key, metric in (
        ("searches_active", "wharf_http_searches_active"),
        ("tails_active", "wharf_http_tails_active"),
    ):
        body[key] = int(registry.get_sample_value(metric) or 0)
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text (the cluster backend's gauges read fresh from the cluster)."""
    app = request.app
    try:
        app[METRICS].observe_storage(await in_pool(request, app[STORE].backend_status))
    except WharfError as exc:  # the process's own metrics still render
        log.warning("metrics: the storage status failed: %s", exc)
    body = generate_latest(app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
