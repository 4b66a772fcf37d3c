"""Pieces the HTTP API modules share: app keys, errors as JSON, query parameters, NDJSON output,
and the bounded hand-over from a scanning thread to the event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import msgspec
from aiohttp import web
from multidict import MultiMapping

from collector.config import CollectorConfig
from collector.metrics import Metrics
from collector.storage import Store
from collector.storage.workers import ScanWorkers
from wharf.errors import (
    InvalidArgument,
    OffsetOutOfRange,
    RemoteError,
    StoreClosed,
    TopicExists,
    UnknownTopic,
)
from wharf.record import Record

NDJSON: Final = "application/x-ndjson"

# Search output is handed from the scanning thread to the loop in chunks of about this size:
# big enough that the per-chunk cost (a queue put, a loop wake-up) vanishes, small enough that
# the first lines of a slow search reach the client early.
CHUNK_BYTES: Final = 64 * 1024
# Chunks a scanning thread may run ahead of a slow client before it blocks (backpressure): with
# CHUNK_BYTES this bounds the memory one search holds to about 512 KiB.
FEED_CHUNKS: Final = 8
# How often a waiting handler checks whether its client went away (aiohttp does not cancel
# handlers on disconnect, and a scan that finds nothing writes nothing that could fail).
CLIENT_CHECK_S: Final = 0.2


class ApiError(Exception):
    """An HTTP error with a message for the client: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class UnknownGroup(InvalidArgument):
    """The consumer group has no committed offsets (HTTP 404)."""


def status_for(exc: Exception) -> int:
    """The HTTP status of one of our errors."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, UnknownTopic | UnknownGroup):
        return 404
    if isinstance(exc, TopicExists):
        return 409
    if isinstance(exc, OffsetOutOfRange):
        return 416
    if isinstance(exc, StoreClosed):
        return 503
    if isinstance(exc, RemoteError):  # damaged data on our side, not the client's fault
        return 500
    return 400


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return web.json_response({"error": message}, status=status, headers=headers)


# -- query parameters -----------------------------------------------------------------------

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


def param_bool(q: MultiMapping[str], name: str) -> bool:
    """A flag: ``1/true/yes/on`` or ``0/false/no/off`` (absent is false)."""
    raw = q.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"parameter {name}={raw!r} is not a boolean (use 1 or 0)")


def param_int(
    q: MultiMapping[str], name: str, default: int | None = None, *, minimum: int | None = 0
) -> int | None:
    """An integer parameter, checked against ``minimum``."""
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"parameter {name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"parameter {name}={value} must be >= {minimum}")
    return value


def param_list(q: MultiMapping[str], name: str) -> list[str]:
    """A repeatable parameter that may also hold a comma-separated list; blanks dropped."""
    return [v.strip() for raw in q.getall(name, []) for v in raw.split(",") if v.strip()]


# -- NDJSON ---------------------------------------------------------------------------------


class HitOut(msgspec.Struct):
    """One record as the API prints it (search, tail, consume)."""

    topic: str
    partition: int
    offset: int
    ts: int
    host: str
    source: str
    line: str
    fields: dict[str, Any]
    level: str | None


_encoder = msgspec.json.Encoder()


def encode_hit(topic: str, partition: int, offset: int, rec: Record) -> bytes:
    """One NDJSON line for a record."""
    return (
        _encoder.encode(
            HitOut(
                topic,
                partition,
                offset,
                rec.ts,
                rec.host,
                rec.source,
                rec.line,
                rec.fields,
                rec.level,
            )
        )
        + b"\n"
    )


def encode_line(obj: object) -> bytes:
    """One NDJSON line."""
    return _encoder.encode(obj) + b"\n"


def client_gone(request: web.Request) -> bool:
    """Whether the client's connection is closed (aiohttp drops the transport when it goes)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def start_ndjson(request: web.Request) -> web.StreamResponse:
    """A prepared, chunked NDJSON response."""
    resp = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


# -- thread → loop --------------------------------------------------------------------------


class Feed:
    """Chunks from one worker thread to one coroutine, bounded and cancellable.

    The thread blocks in ``put`` while ``FEED_CHUNKS`` chunks wait (so a slow client slows the
    scan instead of filling memory) and learns from ``put``'s result that the reader went away.
    The coroutine side never blocks the loop.
    """

    _END: Final = b""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = FEED_CHUNKS) -> None:
        self._loop = loop
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize)
        self._ready = asyncio.Event()
        self.cancelled = threading.Event()

    # worker thread side

    def put(self, chunk: bytes) -> bool:
        """Hand over a non-empty chunk, waiting for room; ``False`` once the reader cancelled."""
        while not self.cancelled.is_set():
            try:
                self._queue.put(chunk, timeout=0.1)
            except queue.Full:
                continue
            self._wake()
            return True
        return False

    def close(self) -> None:
        """Mark the end of the stream (call once, last, from the worker thread)."""
        self.put(self._END)

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the loop is closed: nobody reads any more
            self.cancelled.set()

    # event loop side

    async def get(self, timeout: float) -> bytes | None:
        """The next chunk, ``b""`` at the end, or ``None`` after ``timeout`` seconds without one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                pass
            self._ready.clear()
            try:  # a put between the first check and the clear would otherwise be missed
                return self._queue.get_nowait()
            except queue.Empty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                async with asyncio.timeout(left):
                    await self._ready.wait()
            except TimeoutError:
                return None

    def cancel(self) -> None:
        """Tell the worker to stop, and unblock it if it waits for room."""
        self.cancelled.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


# -- app keys -------------------------------------------------------------------------------

STORE: Final = web.AppKey("store", Store)
CONFIG: Final = web.AppKey("config", CollectorConfig)
METRICS: Final = web.AppKey("metrics", Metrics)
# Long scans (search) run here; short reads (tail, consume, group files) on IO_POOL, so a few
# big searches can never delay a live tail.
SCAN_POOL: Final = web.AppKey("scan_pool", ThreadPoolExecutor)
# Worker processes for big counts (None: every count runs in the collector's process).
SCAN_WORKERS: Final[web.AppKey[ScanWorkers | None]] = web.AppKey("scan_workers")
IO_POOL: Final = web.AppKey("io_pool", ThreadPoolExecutor)
FEEDS: Final = web.AppKey("feeds", set[Feed])
CLOSING: Final = web.AppKey("closing", asyncio.Event)
