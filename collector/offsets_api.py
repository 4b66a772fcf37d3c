"""Offset lookup by time, for consumers that start or stop at an instant (``wharf replay
--from-time``/``--to-time``)::

    GET /v1/topics/{t}/partitions/{p}/offset?time=NS
        {"topic", "partition", "time", "offset", "start_offset", "end_offset"}

``offset`` is the first offset whose record is stamped at or after ``time`` (nanoseconds since
the epoch), or the end offset when there is none: the same rule as a group reset ``to_time``.
It is a read (any read token). ``register(app)`` adds the route; it is idempotent so it can be
called from ``make_app`` and from tests that build their own app.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from collector.http_util import IO_POOL, STORE, param_int
from collector.storage import Store
from wharf.errors import InvalidArgument

ROUTE: Final = "/v1/topics/{topic}/partitions/{partition}/offset"


def register(app: web.Application) -> None:
    """Add ``GET /v1/topics/{t}/partitions/{p}/offset`` to ``app`` (before it starts)."""
    if any(res.canonical == ROUTE for res in app.router.resources()):
        return
    app.router.add_get(ROUTE, handle_offset)


def lookup(store: Store, topic: str, partition: int, ts: int) -> dict[str, int | str]:
    """The answer body: the offset for ``ts`` and the partition's bounds."""
    part = store.partition(topic, partition)
    start, end = part.start_offset, part.durable_offset
    offset = min(max(part.offset_for_time(ts), start), end)
    return {
        "topic": topic,
        "partition": partition,
        "time": ts,
        "offset": offset,
        "start_offset": start,
        "end_offset": end,
    }


async def handle_offset(request: web.Request) -> web.Response:
    """``GET /v1/topics/{topic}/partitions/{partition}/offset?time=NS``."""
    raw = request.match_info["partition"]
    if not raw.isdigit():
        raise InvalidArgument(f"partition {raw!r} is not a non-negative integer")
    ts = param_int(request.query, "time", minimum=None)
    if ts is None:
        raise InvalidArgument("parameter time is required (nanoseconds since the epoch)")
    body = await asyncio.get_running_loop().run_in_executor(
        request.app[IO_POOL],
        lookup,
        request.app[STORE],
        request.match_info["topic"],
        int(raw),
        ts,
    )
    return web.json_response(body)
