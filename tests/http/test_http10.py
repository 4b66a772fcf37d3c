"""HTTP/1.0 clients (curl -0, old proxies, load balancers' health checks) get correct answers
from every GET endpoint: no chunked encoding they cannot read, no 500. And query parameters are
checked: an unknown one or a bad value is a 400 naming it, with the error's code."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from collector.storage import Store
from tests.harness import LiveServer
from tests.http.live import request
from wharf import batch as wb
from wharf.record import Record

_READ_LIMIT = 1 << 20


def _http10(
    url: str, path: str, *, until: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 request on a raw socket; the body ends when the server closes (or, for a
    stream that never ends, once ``until`` was received)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {parts.hostname}\r\n\r\n".encode())
        data = b""
        while len(data) < _READ_LIMIT:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if until is not None and until in data.partition(b"\r\n\r\n")[2]:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture
def filled(server: LiveServer, store: Store) -> LiveServer:
    store.create_topic("app")
    store.append("app", 0, wb.build([Record(ts=5, line="a", host="h"), Record(ts=9, line="b")]))
    body = {"topic": "app", "partition": 0, "offset": 1}
    assert request(server.url, "POST", "/v1/groups/g/commit", body=body)[0] == 200
    return server


@pytest.mark.parametrize(
    ("path", "first"),
    [
        ("/healthz", b'{"status": "ok"}'),
        ("/metrics", b"# HELP"),
        ("/v1/status", b'{"status": "ok"'),
        ("/v1/topics", b'{"topics":[{"name":"app"'),
        ("/v1/topics/app", b'{"name":"app"'),
        ("/v1/topics/app/partitions/0/records", b'{"topic":"app","partition":0,"offset":0'),
        ("/v1/topics/app/partitions/0/offset?time=6", b'{"topic":"app","partition":0,"time":6'),
        ("/v1/search?topic=app&q=b", b'{"topic":"app","partition":0,"offset":1'),
        ("/v1/search?topic=app&count=1", b'{"topic":"app","partition":0,"count":2}'),
        ("/v1/search?topic=app&files=1", b'{"topic":"app","host":"","source":"","count":1}'),
        ("/v1/search?topic=app&q=a&after=1", b'{"topic":"app","partition":0,"offset":0'),
        ("/v1/groups", b'{"groups":["g"]}'),
        ("/v1/groups/g", b'{"group":"g","offsets":[{"topic":"app"'),
    ],
)
def test_every_get_answers_http10(filled: LiveServer, path: str, first: bytes) -> None:
    status, headers, body = _http10(filled.url, path)
    assert status == 200, body
    assert "chunked" not in headers.get("transfer-encoding", "")
    assert body.startswith(first), body[:200]
    if headers.get("content-type", "").startswith("application/x-ndjson"):
        lines = body.splitlines()
        assert all(json.loads(line) for line in lines)
        if path.startswith("/v1/search"):
            assert json.loads(lines[-1])["done"] is True  # the whole stream, up to its end


def test_tail_streams_to_an_http10_client(filled: LiveServer) -> None:
    status, headers, body = _http10(filled.url, "/v1/tail?topic=app&n=1", until=b"heartbeat")
    assert status == 200 and "chunked" not in headers.get("transfer-encoding", "")
    rows = [json.loads(line) for line in body.splitlines() if line.endswith(b"}")]
    assert rows[0]["line"] == "b" and rows[1]["heartbeat"] is True


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/search?topic=app&colour=1", "unknown parameter 'colour'"),
        ("/v1/search?topic=app&limit=x", "parameter limit='x' is not an integer"),
        ("/v1/search?topic=app&count=1&files=1", "count=1 and files=1 exclude each other"),
        ("/v1/tail?topic=app&n=-1", "parameter n=-1 must be >= 0"),
        ("/v1/topics/app/partitions/0/records?max_bytes=0", "parameter max_bytes=0 must be >= 1"),
        ("/v1/topics/app/partitions/0/offset", "parameter time is required"),
        ("/v1/topics?x=1", "unknown parameter 'x'"),
    ],
)
def test_bad_parameters_are_400_with_a_code(filled: LiveServer, path: str, message: str) -> None:
    status, body = request(filled.url, "GET", path)
    assert status == 400, body
    assert message in body["error"] and body["code"] == "invalid_argument", body
    assert body["retriable"] is False
