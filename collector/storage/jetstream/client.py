"""One NATS connection on its own event loop thread, for a backend whose API is synchronous.

The storage interface is called from many threads (the HTTP layer's pool, ingest's callbacks,
scans' read-ahead threads); nats-py is asyncio. So the backend owns a loop in a daemon thread,
runs every NATS operation there, and callers wait on a ``concurrent.futures.Future`` with a
deadline. nats-py does not fail a request in flight when its server dies (it reconnects and the
request just never completes), so every wait here has a timeout, and a timed-out operation is
cancelled on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from wharf.errors import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

# One JetStream API request (publish ack, stream info, direct get): short, then retried, as a
# server that died mid-request never answers.
REQUEST_TIMEOUT_S = 2.0


class NatsClient:
    """``NatsClient(urls)`` connects (raising ``StoreError`` when no server answers); ``run``
    executes a coroutine on the connection's loop and waits; ``close`` drains and stops."""

    def __init__(self, urls: Sequence[str], *, name: str, connect_timeout_s: float = 10.0) -> None:
        self.urls = list(urls)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="wharf-nats", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self.nc: NATS = self.run(self._connect(name, connect_timeout_s), connect_timeout_s + 5)
        except BaseException:
            self._stop_loop()
            raise
        self.js: JetStreamContext = self.nc.jetstream(timeout=REQUEST_TIMEOUT_S)

    async def _connect(self, name: str, timeout: float) -> NATS:
        async def error_cb(exc: Exception) -> None:
            log.warning("nats: %s", exc or type(exc).__name__)

        async def disconnected_cb() -> None:
            log.warning("nats: disconnected")

        async def reconnected_cb() -> None:
            log.info(
                "nats: reconnected to %s",
                self.nc.connected_url.netloc if self.nc.connected_url else "?",
            )

        try:
            return await nats.connect(
                servers=self.urls,
                name=name,
                connect_timeout=min(timeout, 2.0),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                ping_interval=5,
                max_outstanding_pings=2,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
            )
        except Exception as exc:  # nats-py raises several types (NoServersError, OSError...)
            raise StoreError(
                f"cannot connect to the NATS cluster at {', '.join(self.urls)}: {exc or type(exc).__name__}"
            ) from exc

    @property
    def on_loop(self) -> bool:
        """Whether the caller runs on the connection's loop (where ``run`` would deadlock)."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait at most ``timeout`` seconds for it."""
        if self.on_loop:
            coro.close()
            raise RuntimeError("NatsClient.run called on its own loop")
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise StoreError(f"the NATS cluster did not answer within {timeout:g} s") from None

    def close(self) -> None:
        """Drain the connection and stop the loop."""
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self.nc.close(), 10)
        except Exception as exc:
            log.warning("closing the NATS connection: %s", exc)
        self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_rest() -> None:
            # nats-py leaves tasks behind (an ordered consumer's heartbeat checks): end them
            # here rather than let the loop be destroyed under them.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.submit(cancel_rest()).result(5)
        except Exception as exc:
            log.debug("cancelling NATS tasks: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
