"""Run real collector pieces on loopback for tests: an event loop in a thread, a real store."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Sequence
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


ROOT = Path(__file__).resolve().parents[2]
WHARF = [sys.executable, "-m", "cli"]


def spawn_collector(
    data: Path,
    port: int,
    http: int,
    *,
    command: list[str] | None = None,
    extra: Sequence[str] = (),
    stdout: Any = None,
    stderr: Any = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``wharf collector run`` on 127.0.0.1 ``port``/``http`` with data in ``data``, and
    return once ``/healthz`` answers (the one way every test starts a collector process)."""
    proc = subprocess.Popen(
        [
            *(command or WHARF),
            "collector",
            "run",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
            "--http",
            f"127.0.0.1:{http}",
            "--log-level",
            "warning",
            *extra,
        ],
        cwd=ROOT,
        stdout=stdout,
        stderr=stderr,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"collector exited with {proc.returncode}") from None
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError("collector not healthy within 30 s")


class CollectorProcess:
    """``wharf collector run`` as a child process on loopback; ``env`` points the CLI at it.

    ``restart()`` starts a new process on the same ports and data directory (after a kill).
    """

    def __init__(self, data: Path, port: int | None = None, http: int | None = None) -> None:
        self.data = data
        self.port = port or free_port()
        self.http = http or free_port()
        self.env = {
            **os.environ,
            "WHARF_COLLECTOR": f"127.0.0.1:{self.port}",
            "WHARF_HTTP": f"http://127.0.0.1:{self.http}",
        }
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return spawn_collector(self.data, self.port, self.http)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Start again on the same ports and data."""
        self.proc = self._spawn()

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def wharf(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the ``wharf`` CLI against this collector."""
        return subprocess.run(
            [*WHARF, *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
        )
