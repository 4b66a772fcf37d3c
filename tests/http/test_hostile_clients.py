"""Clients written to hurt the HTTP API: thousands of connections that never finish their
headers, searches whose answers nobody reads. The API keeps answering everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import ApiSettings, CollectorConfig
from collector.http.app import SEARCH_WORKERS
from collector.storage import Store
from tests.harness import LiveServer, wait_for
from tests.http.live import request
from wharf import batch as wb
from wharf.record import Record

BATCHES = 40
PER_BATCH = 2000  # 80,000 hits of ~300 bytes of NDJSON: far more than socket buffers hold


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store(Path(tmp_path_factory.mktemp("hostile")) / "data") as store:
        store.create_topic("big")
        for b in range(BATCHES):
            recs = [
                Record(ts=1_700_000_000_000_000_000 + b * PER_BATCH + i,
                       line=f"GET /item/{i} HTTP/1.1 200 " + "x" * 150, host="h")
                for i in range(PER_BATCH)
            ]  # fmt: skip
            store.append("big", 0, wb.build(recs))
        yield store


def _serve(store: Store, **api: float) -> LiveServer:
    return LiveServer(store, CollectorConfig(api=ApiSettings(**api)))  # type: ignore[arg-type]


def _stalled_search(port: int) -> socket.socket:
    """A search whose answer is never read (a small receive window fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /v1/search?topic=big HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (reading and dropping what it sent) within ``within``."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_clients_that_never_read_do_not_block_other_searches(store: Store) -> None:
    """More non-reading searches than there are scan slots: a small search still answers at
    once (before, each held a worker thread until its client read, i.e. forever)."""
    with _serve(store, send_timeout_s=300) as srv:
        stalled = [_stalled_search(srv.port) for _ in range(SEARCH_WORKERS + 2)]
        try:
            wait_for(
                lambda: srv.metric("wharf_http_searches_active") == len(stalled),
                30,
                "the stalled searches to start",
            )
            status, rows = request(srv.url, "GET", "/v1/search", [("topic", "big"), ("limit", 1)])
            assert status == 200 and rows[-1]["done"] is True and len(rows) == 2, rows
        finally:
            for sock in stalled:
                sock.close()


def test_an_answer_nobody_reads_is_dropped_after_the_send_timeout(store: Store) -> None:
    with _serve(store, send_timeout_s=1.0) as srv:
        sock = _stalled_search(srv.port)
        with sock:
            wait_for(lambda: srv.metric("wharf_http_searches_active") == 1, 30, "the search")
            time.sleep(2.0)  # past the send timeout without reading a byte
            assert _closed_by_server(sock, 30), "the stalled search was never dropped"
        wait_for(lambda: srv.metric("wharf_http_searches_active") == 0, 30, "its worker to end")


def test_connections_past_the_limit_get_503_and_slow_headers_are_closed(store: Store) -> None:
    """Connections that send half a request head and stop hold a slot only until the idle
    timeout; past the connection limit a new one is told 503 at once; the API answers again
    as soon as the idle ones are gone."""
    with _serve(store, max_connections=20, idle_timeout_s=1.5) as srv:
        idle = []
        try:
            for _ in range(20):
                sock = socket.create_connection(("127.0.0.1", srv.port))
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                idle.append(sock)
            wait_for(lambda: _refused(srv.port), 10, "a connection past the limit refused")
            for sock in idle:
                assert _closed_by_server(sock, 30), "a connection with slow headers stayed"
        finally:
            for sock in idle:
                sock.close()
        status, body = request(srv.url, "GET", "/healthz")
        assert status == 200, body


def _refused(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(65536)
    if not answer.startswith(b"HTTP/1.1 503"):
        return False
    assert b"Retry-After: 1" in answer and b"max_connections" in answer, answer
    return True
