"""Reading a partition by offset: ``.../records`` (consume) and ``.../offset?time=``."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from collector.http.keys import STORE, in_pool
from collector.http.stream import NDJSON, json_answer
from collector.query.search import hit_row
from collector.storage.interface import Storage
from wharf.api import ConsumeEnd, ConsumeRequest, OffsetAnswer, OffsetRequest, encode_row
from wharf.errors import InvalidArgument

# Consume reads stop near this many stored bytes by default, and never go past the cap (the
# JSON answer is several times larger than the compressed batches).
DEFAULT_CONSUME_BYTES: Final = 1 << 20
MAX_CONSUME_BYTES: Final = 16 << 20


def _partition_number(request: web.Request) -> int:
    raw = request.match_info["partition"]
    if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is true; int("²") fails
        raise InvalidArgument(f"partition {raw!r} is not a non-negative integer")
    return int(raw)


def read_records(store: Storage, topic: str, partition: int, offset: int, max_bytes: int) -> bytes:
    """Records from ``offset`` as NDJSON, then the ``ConsumeEnd`` line (worker thread)."""
    part = store.partition(topic, partition)
    out = bytearray()
    nxt = offset
    for batch in part.read(offset, max_bytes):
        base = batch.header.base_offset
        skip = max(0, offset - base)
        for i, rec in enumerate(batch.records(range(skip, len(batch))), start=skip):
            out += hit_row(topic, partition, base + i, rec)
        nxt = base + len(batch)
    out += encode_row(ConsumeEnd(nxt, part.durable_offset))
    return bytes(out)


async def consume(request: web.Request) -> web.Response:
    """``GET /v1/topics/{t}/partitions/{p}/records?offset=&max_bytes=``: records from ``offset``
    (default: the partition start) up to about ``max_bytes`` of stored batches, then
    ``{"next_offset": N, "end_offset": E}``."""
    store = request.app[STORE]
    topic = request.match_info["topic"]
    partition = _partition_number(request)
    req = ConsumeRequest.from_params(request.query.items())
    part = store.partition(topic, partition)
    offset = req.offset if req.offset is not None else part.start_offset
    max_bytes = req.max_bytes if req.max_bytes is not None else DEFAULT_CONSUME_BYTES
    if max_bytes > MAX_CONSUME_BYTES:
        raise InvalidArgument(f"parameter max_bytes={max_bytes} exceeds {MAX_CONSUME_BYTES}")
    body = await in_pool(request, read_records, store, topic, partition, offset, max_bytes)
    return web.Response(body=body, headers={"Content-Type": NDJSON})


def lookup(store: Storage, topic: str, partition: int, ts: int) -> OffsetAnswer:
    """The offset for ``ts``, clamped to the partition's bounds."""
    part = store.partition(topic, partition)
    start, end = part.start_offset, part.durable_offset
    offset = min(max(part.offset_for_time(ts), start), end)
    return OffsetAnswer(topic, partition, ts, offset, start, end)


async def offset_for_time(request: web.Request) -> web.Response:
    """``GET /v1/topics/{topic}/partitions/{partition}/offset?time=NS``."""
    partition = _partition_number(request)
    req = OffsetRequest.from_params(request.query.items())
    assert req.time is not None  # OffsetRequest requires it
    answer = await in_pool(
        request, lookup, request.app[STORE], request.match_info["topic"], partition, req.time
    )
    return json_answer(answer)
