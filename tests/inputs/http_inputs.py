"""What the OTLP and Loki input tests share: a plain HTTP client on loopback that also sends
what no polite client would (a 100 MB body, bytes that are not HTTP), and the inputs' counts
read back from the collector's ``/metrics`` and ``/v1/status``."""

from __future__ import annotations

import http.client
import importlib
import json
import socket
import ssl
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from collector.config import InputSettings
from collector.inputs import IMPLEMENTATIONS
from collector.inputs.base import InputContext, Tokens
from collector.inputs.sink import Sink
from collector.metrics import INPUT_COUNTERS, Metrics
from collector.storage import Store
from tests.harness import CollectorProcess, LoopThread
from wharf.record import Record

TIMEOUT_S = 60.0  # a deadline for one request, not a speed check


@dataclass
class Answer:
    """One HTTP answer; ``status`` 0 when the server closed the connection without one."""

    status: int
    headers: dict[str, str]
    body: bytes


def post(
    port: int,
    path: str,
    body: bytes | Iterable[bytes],
    headers: dict[str, str],
    *,
    tls: ssl.SSLContext | None = None,
) -> Answer:
    """POST ``body`` (an iterable of chunks: chunked encoding) and read the answer; a
    connection the server closed early is ``Answer(0, ...)``."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT_S, context=tls)
    try:
        chunked = not isinstance(body, bytes)
        conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    except (ConnectionError, http.client.RemoteDisconnected):
        return Answer(0, {}, b"")
    finally:
        conn.close()


def post_huge(port: int, path: str, headers: dict[str, str], size: int) -> Answer:
    """Announce a body of ``size`` bytes with Content-Length and send it in 1 MiB pieces
    until the server answers or closes (it may answer before reading any of it)."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {size}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    piece = b"\0" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for _ in range(size // len(piece)):
                sock.sendall(piece)
        except OSError:  # it answered and closed: read what it said
            pass
        return _read_answer(sock)


def send_raw(port: int, data: bytes) -> Answer:
    """Bytes that are not HTTP (nothing at all when empty), then whatever the server says
    before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        if data:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> Answer:
    raw = b""
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except OSError:
        pass
    if not raw.startswith(b"HTTP/"):
        return Answer(0, {}, raw)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


def input_counts(proc: CollectorProcess, name: str) -> dict[str, float]:
    """The counters of input ``name`` as ``/metrics`` shows them (``wharf_input_*_total``),
    and its open connections."""
    with urllib.request.urlopen(f"{proc.url}/metrics", timeout=TIMEOUT_S) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = dict.fromkeys(INPUT_COUNTERS, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("input") != name:
                continue
            if sample.name == "wharf_input_open_connections":
                counts["connections"] = sample.value
            elif sample.name.startswith("wharf_input_") and sample.name.endswith("_total"):
                counts[sample.name.removeprefix("wharf_input_").removesuffix("_total")] = (
                    sample.value
                )
    return counts


def input_status(proc: CollectorProcess, name: str) -> dict[str, object]:
    """Input ``name``'s row of ``/v1/status``."""
    with urllib.request.urlopen(f"{proc.url}/v1/status", timeout=TIMEOUT_S) as resp:
        rows = json.loads(resp.read())["inputs"]
    (row,) = [r for r in rows if r["name"] == name]
    return dict(row)


class InputUnderTest:
    """One input in this process on 127.0.0.1 (port 0) around a real embedded ``Store``, for
    what a collector child cannot show: TLS (the child's API would speak it too) and a sink
    held full by the test. Built as ``collector.inputs.Inputs`` builds it."""

    def __init__(
        self,
        data: Path,
        settings: InputSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        tokens: Sequence[str] = (),
    ) -> None:
        self.loop = LoopThread()
        self.store = Store(data)
        self.pool = ThreadPoolExecutor(2)
        counters = Metrics().input_counters(settings.label, settings.type)
        sink = Sink(
            self.store,
            settings.topic_name,
            counters,
            self.pool,
            linger_s=settings.linger_ms / 1000,
            max_pending_bytes=settings.max_pending_bytes,
        )
        self.ctx = InputContext(settings, sink, counters, ssl_context, Tokens(list(tokens)))
        module, _, name = IMPLEMENTATIONS[settings.type].partition(":")
        cls = getattr(importlib.import_module(f"collector.inputs.{module}"), name)
        self.input = cls(self.ctx)
        self.port: int = self.loop.run(self._start())

    async def _start(self) -> int:
        await self.ctx.sink.start()
        port: int = await self.input.start()
        return port

    def records(self) -> list[Record]:
        """Every record stored in the input's topic so far."""
        out: list[Record] = []
        for part in self.store.partitions(self.ctx.sink.topic):
            for b in part.read(0, 1 << 40):
                out.extend(b.records())
        return out

    def close(self) -> None:
        """Stop the input, append what its sink holds, close the store."""

        async def stop() -> None:
            await self.input.close()
            await self.ctx.sink.close()

        self.loop.run(stop())
        self.pool.shutdown()
        self.store.close()
        self.loop.close()
