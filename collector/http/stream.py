"""NDJSON responses fed from a worker thread: bounded, cancellable, and correct for HTTP/1.0.

A search or a tail runs on a thread and hands chunks of NDJSON to the event loop through a
``Feed``; the handler writes them out. HTTP/1.1 clients get a chunked response; an HTTP/1.0
client cannot read chunks, so it gets the body delimited by the end of the connection.

A client that stops reading costs nothing but its connection: the worker waiting for room in
its feed gives its CPU slot (``Slots``) to another search, and a write that makes no progress
for ``[api] send_timeout_s`` drops the connection (``send``), ending the worker too.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web

T = TypeVar("T")

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


class Slots:
    """How many searches may scan at once (a semaphore), as opposed to how many may be open:
    a search whose client reads slowly waits for it without holding a slot."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._sem = threading.BoundedSemaphore(n)

    def acquire(self) -> None:
        self._sem.acquire()

    def release(self) -> None:
        self._sem.release()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` holding a slot (worker thread)."""
        self._sem.acquire()
        try:
            return fn(*args)
        finally:
            self._sem.release()


class Feed:
    """Chunks from one worker thread to one coroutine, bounded and cancellable.

    The thread blocks in ``put`` while ``FEED_CHUNKS`` chunks wait (so a slow client slows the
    scan instead of filling memory) and learns from ``put``'s result that the reader went away.
    The coroutine side never blocks the loop.
    """

    _END: Final = b""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        maxsize: int = FEED_CHUNKS,
        slots: Slots | None = None,
    ) -> None:
        self._loop = loop
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize)
        self._ready = asyncio.Event()
        self._slots = slots  # held by the worker (``Slots.run``) except while it waits here
        self.cancelled = threading.Event()

    # worker thread side

    def put(self, chunk: bytes) -> bool:
        """Hand over a non-empty chunk, waiting for room; ``False`` once the reader cancelled."""
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            return self._put_waiting(chunk)
        self._wake()
        return True

    def _put_waiting(self, chunk: bytes) -> bool:
        if self._slots is not None:
            self._slots.release()  # the client is slow: let another search scan meanwhile
        try:
            while not self.cancelled.is_set():
                try:
                    self._queue.put(chunk, timeout=0.1)
                except queue.Full:
                    continue
                self._wake()
                return True
            return False
        finally:
            if self._slots is not None:
                self._slots.acquire()

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


async def send(request: web.Request, resp: web.StreamResponse, data: bytes, timeout: float) -> None:
    """``resp.write(data)``, or ``ConnectionResetError`` once the client has not taken it for
    ``timeout`` seconds: the connection is closed, so the client sees the answer end early."""
    try:
        async with asyncio.timeout(timeout):
            await resp.write(data)
    except TimeoutError:
        transport = request.transport
        if transport is not None:
            transport.abort()  # what is buffered for it is dropped: it was not reading
        raise ConnectionResetError(f"the client read nothing for {timeout:g} s") from None


async def pump(request: web.Request, feed: Feed, send_timeout: float) -> web.StreamResponse:
    """Write what ``feed`` hands over until it ends or the client goes away (or stops reading
    for ``send_timeout`` seconds)."""
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
            await send(request, resp, chunk, send_timeout)
        return resp
    except ConnectionError:  # the client went away: nobody reads what we return
        return resp if resp is not None else web.Response()
