"""Real pieces for replay tests: the collector API (with or without the offset-by-time lookup),
synthetic topics, HTTP and TCP receivers on 127.0.0.1 port 0, and ``wharf`` as a child
process."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.storage import Store, TopicConfig
from tests.harness import LiveServer, wait_for
from wharf import batch as wb
from wharf.record import Record
from wharf.topics import partition_for

WHARF = Path(sys.executable).with_name("wharf")
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
HOSTS = ("web-1", "web-2", "web-4")  # partitions 1, 0 and 2 of 3


def replay_api(store: Store, *, lookup: bool = True) -> LiveServer:
    """The real API with quick heartbeats. With ``lookup=False`` the offset lookup answers 404,
    as a collector without it does."""
    return LiveServer(store, heartbeat_s=0.3, middlewares=() if lookup else (_no_lookup,))


@web.middleware
async def _no_lookup(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.endswith("/offset"):
        return web.json_response({"error": "Not Found"}, status=404)
    resp: web.StreamResponse = await handler(request)
    return resp


def make_records(host: str, count: int, *, step_s: float = 1.0, start: int = T0) -> list[Record]:
    return [
        Record(
            ts=start + round(i * step_s * SECOND),
            line=f"{host} request {i} status={200 + i % 3}",
            host=host,
            source="/var/log/app.log",
            fields={"i": i, "status": 200 + i % 3},
            level="info" if i % 5 else "warn",
        )
        for i in range(count)
    ]


def load_topic(
    store: Store,
    topic: str,
    per_host: int,
    *,
    hosts: Iterable[str] = HOSTS,
    partitions: int = 3,
    per_batch: int = 37,
    step_s: float = 1.0,
) -> dict[int, list[Record]]:
    """Create ``topic`` and store ``per_host`` records per host; the records per partition."""
    store.create_topic(topic, TopicConfig(partitions=partitions))
    out: dict[int, list[Record]] = {}
    for host in hosts:
        p = partition_for(host, partitions)
        recs = make_records(host, per_host, step_s=step_s)
        out.setdefault(p, []).extend(recs)
        for i in range(0, len(recs), per_batch):
            store.append(topic, p, wb.build(recs[i : i + per_batch]))
    return out


# -- the CLI as a child process ---------------------------------------------------------------


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_HTTP"] = url
    env["LC_ALL"] = "C.UTF-8"
    env["COLUMNS"] = "200"
    return env


def wharf(
    url: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WHARF), *args],
        capture_output=True,
        text=True,
        env={**env_for(url), **(env or {})},
        timeout=timeout,
        check=False,
    )


def spawn(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(WHARF), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(url),
    )


def stop_when(
    proc: subprocess.Popen[str],
    cond: Callable[[], bool],
    *,
    what: str,
    sig: int = signal.SIGINT,
) -> str:
    """Wait until ``cond`` (``what``), send ``sig`` and wait for the exit; ``proc``'s stderr.
    The process never outlives a failing test."""
    try:
        wait_for(cond, 30, what)
        proc.send_signal(sig)
        return proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def resume_args(stderr: str) -> list[str]:
    """The arguments of the ``wharf: resume with: wharf replay ...`` line."""
    line = next(x for x in stderr.splitlines() if x.startswith("wharf: resume with: "))
    argv = shlex.split(line.removeprefix("wharf: resume with: "))
    assert argv[:2] == ["wharf", "replay"], argv
    return argv[1:]


def assert_one_error_line(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("wharf: "), done.stderr
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# -- receivers --------------------------------------------------------------------------------


@dataclass
class Request:
    key: str
    status: int
    records: list[dict[str, Any]]
    at: float
    headers: dict[str, str]


@dataclass
class HttpReceiver:
    """An NDJSON receiver: fails every ``fail_every``-th request with ``fail_status``, sleeps
    ``delay_s`` before accepting (a slow consumer), and keeps what it accepted."""

    fail_every: int = 0
    fail_status: int = 503
    delay_s: float = 0.0
    retry_after: str | None = None
    script: list[int] = field(default_factory=list)  # statuses for the first requests
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ingest"

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            n = len(self.requests) + 1
            if self.script:
                status = self.script.pop(0)
            elif self.fail_every and n % self.fail_every == 0:
                status = self.fail_status
            else:
                status = 200
            req = Request(
                h.headers.get("Idempotency-Key", ""), status, [], time.monotonic(), dict(h.headers)
            )
            self.requests.append(req)
        if status == 200:
            if self.delay_s:
                time.sleep(self.delay_s)
            records = [json.loads(x) for x in body.splitlines() if x]
            with self.lock:
                req.records = records
        out = b'{"ok": true}' if status == 200 else b'{"error": "try later"}'
        try:
            h.send_response(status)
            if status != 200 and self.retry_after is not None:
                h.send_header("Retry-After", self.retry_after)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(out)))
            h.end_headers()
            h.wfile.write(out)
        except OSError:
            pass  # the client was killed while we were slow: we still took the records

    @property
    def accepted(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.status == 200 and r.records]

    def records(self) -> list[dict[str, Any]]:
        return [rec for r in self.accepted for rec in r.records]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class TcpReceiver:
    """Accepts connections on 127.0.0.1 and keeps every byte received."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.connections = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10)
                while chunk := conn.recv(65536):
                    with self.lock:
                        self.data += chunk

    def lines(self) -> list[str]:
        with self.lock:
            return bytes(self.data).decode().splitlines()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(10)
        self.sock.close()
