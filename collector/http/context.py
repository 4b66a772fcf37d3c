"""``GET /v1/topics/{t}/partitions/{p}/context``: one record and its neighbours from the same
host and source, in offset order (``collector.query.context.around``): what a record's detail
view shows around it. A short read, on the I/O pool like a consume."""

from __future__ import annotations

import time

from aiohttp import web

from collector.http.keys import STORE, in_pool
from collector.http.records import _partition_number
from collector.http.stream import NDJSON
from collector.query.context import around
from collector.query.search import stats_row
from collector.storage.interface import Storage
from collector.storage.scan import ScanStats
from wharf.api import ContextHit, Done, RecordContextRequest, encode_row


def context_rows(
    store: Storage, topic: str, partition: int, offset: int, before: int, after: int
) -> bytes:
    """``ContextHit`` rows (``match`` true for the record at ``offset`` only, ``group`` 0),
    then a ``Done`` row (worker thread)."""
    started = time.monotonic()
    stats = ScanStats()
    lines = around(store.partition(topic, partition), offset, before, after, stats)
    out = bytearray()
    for line in lines:
        r = line.record
        out += encode_row(
            ContextHit(
                topic, partition, line.offset, r.ts, r.host, r.source, r.line, r.fields,
                r.level, line.match, 0,
            )
        )  # fmt: skip
    out += encode_row(Done(done=True, stats=stats_row(stats, 1, started)))
    return bytes(out)


async def record_context(request: web.Request) -> web.Response:
    """``?offset=N&before=B&after=A`` (B and A default 10, at most ``MAX_CONTEXT``)."""
    topic = request.match_info["topic"]
    partition = _partition_number(request)
    req = RecordContextRequest.from_params(request.query.items())
    assert req.offset is not None  # RecordContextRequest requires it
    body = await in_pool(
        request, context_rows, request.app[STORE], topic, partition, req.offset, req.before,
        req.after,
    )  # fmt: skip
    return web.Response(body=body, headers={"Content-Type": NDJSON})
