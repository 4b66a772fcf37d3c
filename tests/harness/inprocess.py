"""The in-process variant: real collector pieces on 127.0.0.1 port 0, in this process, around a
real ``Store`` (for tests that need the store or the metrics in hand). Each server binds port
0 itself and reads its port back from its own socket: nothing to race for.

- ``LiveServer``: the HTTP API in an event loop on a background thread;
- ``IngestUnderTest``: the native ingest server on a ``LoopThread``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from aiohttp.typedefs import Middleware

from collector.config import AuthSettings, CollectorConfig, LimitSettings
from collector.http import SessionsProvider, make_app, serve
from collector.ingest import IngestServer
from collector.metrics import Metrics
from collector.storage import Store
from collector.storage.jetstream import JetStreamStore
from collector.storage.workers import ScanWorkers

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread; ``run(coro)`` executes on it and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class IngestUnderTest:
    """A store plus an ingest server on 127.0.0.1, port 0."""

    def __init__(
        self,
        data_dir: Path,
        *,
        tokens: list[str] | None = None,
        limits: LimitSettings | None = None,
        ssl_context: Any = None,
    ) -> None:
        self.config = CollectorConfig(
            data_dir=str(data_dir),
            auth=AuthSettings(write_tokens=tokens or []),
            limits=limits or LimitSettings(),
        )
        self.store = Store(data_dir)
        self.metrics = Metrics()
        self.loop = LoopThread()
        self.server = IngestServer(self.store, self.config, self.metrics, ssl_context=ssl_context)
        self.port = self.loop.run(self.server.start("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.loop.run(self.server.close())
        self.loop.close()
        self.store.close()


class LiveServer:
    """``with LiveServer(store) as srv: srv.url``: the API served until the block ends.

    ``port`` is 0 (the server picks one) unless a test holds a ``ReservedPort`` for a server
    restarted at the same address. ``middlewares`` run after the API's own (a test's stand-in
    for an older collector, say).
    """

    def __init__(
        self,
        store: Store | JetStreamStore,
        config: CollectorConfig | None = None,
        *,
        heartbeat_s: float = 5.0,
        port: int = 0,
        progress_s: float = 0.5,
        sessions: SessionsProvider | None = None,
        scan_workers: ScanWorkers | None = None,
        middlewares: Sequence[Middleware] = (),
    ) -> None:
        self.store = store
        self.scan_workers = scan_workers
        self.config = config or CollectorConfig()
        self.metrics = Metrics()
        self.heartbeat_s = heartbeat_s
        self.progress_s = progress_s
        self.sessions = sessions
        self.middlewares = list(middlewares)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="live-http", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._listening.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())

    async def _start(self) -> None:
        groups_offsets = None
        if isinstance(self.store, Store):
            self.store.use_workers(self.scan_workers)
            data_dir = self.store.data_dir
        else:  # the cluster backend: groups in its bucket, nothing in a data directory
            groups_offsets = self.store.group_offsets()
            data_dir = Path(self.config.data_dir)
        app = make_app(
            self.store,
            self.config,
            self.metrics,
            data_dir=data_dir,
            groups_offsets=groups_offsets,
            heartbeat_s=self.heartbeat_s,
            progress_s=self.progress_s,
            sessions=self.sessions,
        )
        app.middlewares.extend(self.middlewares)
        self._listening = await serve(
            app, self.config.api, "127.0.0.1", self.port, shutdown_timeout=5.0
        )
        self.port = self._listening.port  # the port it bound (port 0: the kernel's pick)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value
