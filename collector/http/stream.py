"""NDJSON responses fed from a worker thread: bounded, cancellable, and correct for HTTP/1.0.

A search or a tail runs on a thread and hands chunks of NDJSON to the event loop through a
``Feed``; the handler writes them out. HTTP/1.1 clients get a chunked response; an HTTP/1.0
client cannot read chunks, so it gets the body delimited by the end of the connection.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Final

import msgspec
from aiohttp import web

NDJSON: Final = "application/x-ndjson"
# Chunks a scanning thread may run ahead of a slow client before it blocks (backpressure): with
# ``collector.query.search.CHUNK_BYTES`` this bounds the memory one search holds to ~512 KiB.
FEED_CHUNKS: Final = 8
# How often a waiting handler checks whether its client went away (aiohttp does not cancel
# handlers on disconnect, and a scan that finds nothing writes nothing that could fail).
CLIENT_CHECK_S: Final = 0.2


def json_answer(body: msgspec.Struct, status: int = 200) -> web.Response:
    """A JSON answer encoded from a ``wharf.api`` Struct (field order as declared)."""
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def client_gone(request: web.Request) -> bool:
    """Whether the client's connection is closed (aiohttp drops the transport when it goes)."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def start_ndjson(request: web.Request) -> web.StreamResponse:
    """A prepared NDJSON response: chunked for HTTP/1.1, ended by closing for HTTP/1.0 (which
    has no chunked encoding: aiohttp refuses to enable it there)."""
    resp = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-cache"})
    if request.version >= (1, 1):
        resp.enable_chunked_encoding()
    else:
        resp.force_close()
    await resp.prepare(request)
    return resp


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


async def pump(request: web.Request, feed: Feed) -> web.StreamResponse:
    """Write what ``feed`` hands over until it ends or the client goes away."""
    resp: web.StreamResponse | None = None
    try:
        resp = await start_ndjson(request)
        while True:
            chunk = await feed.get(CLIENT_CHECK_S)
            if chunk is None:
                if client_gone(request):
                    break
                continue
            if not chunk:
                await resp.write_eof()
                break
            await resp.write(chunk)
        return resp
    except ConnectionError:  # the client went away: nobody reads what we return
        return resp if resp is not None else web.Response()
