"""Run real collector pieces on loopback for tests: an event loop in a thread, a real store."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from collector.config import AuthSettings, CollectorConfig, LimitSettings
from collector.ingest import IngestServer
from collector.metrics import Metrics
from collector.storage import Store

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


def free_port() -> int:
    """A port that was free a moment ago (for a server restarted on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
