"""``GET /v1/search`` on real sample logs, checked against GNU grep and against the records."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.storage import Store
from tests.harness import LiveServer, grep_lines
from tests.http.conftest import embedded_only
from tests.http.live import LOGS, damage_middle, hits_of, log_lines, ndjson, request
from wharf import batch as wb
from wharf.record import Record

APACHE = "apache_combined.log"
AUTH = "auth.log"


def gnu_grep(args: list[str], name: str) -> list[str]:
    return grep_lines(*args, "--", str(LOGS / name))


def batches_in(srv: LiveServer, topic: str) -> int:
    done = ndjson(srv.url, "/v1/search", [("topic", topic), ("count", 1)])[-1]
    return int(done["stats"]["batches_read"])


def search(srv: LiveServer, **params: Any) -> list[dict[str, Any]]:
    flat: list[tuple[str, Any]] = []
    for k, v in params.items():
        for item in v if isinstance(v, list) else [v]:
            flat.append((k, item))
    return list(hits_of(ndjson(srv.url, "/v1/search", flat)))


@pytest.mark.parametrize(
    ("pattern", "flags", "grep_flags"),
    [
        ("GET /presentations", {"fixed": 1}, ["-F"]),
        ("kibana", {}, []),
        ('" 404 ', {}, []),
        (r"^83\.149\.9\.216 ", {}, []),
        (r"(Firefox|Safari)/[0-9]+$", {}, ["-E"]),
        ("MOZILLA/5.0 (X11", {"fixed": 1, "icase": 1}, ["-F", "-i"]),
        ("googlebot", {"icase": 1}, ["-i"]),
        ("GET", {"invert": 1}, ["-v"]),
        ("", {}, [""]),
    ],
)
def test_search_finds_exactly_what_grep_finds(
    loaded: LiveServer, pattern: str, flags: dict[str, int], grep_flags: list[str]
) -> None:
    expected = gnu_grep([*grep_flags, "-e", pattern] if grep_flags != [""] else ["-e", ""], APACHE)
    hits = search(loaded, topic="web", q=pattern, **flags)
    assert sorted(h["line"] for h in hits) == sorted(expected)
    assert all(h["topic"] == "web" for h in hits)
    counted = ndjson(loaded.url, "/v1/search", [("topic", "web"), ("q", pattern), ("count", 1),
                                                *flags.items()])  # fmt: skip
    assert counted[-1]["count"] == len(expected)
    assert sum(c["count"] for c in counted[:-1]) == len(expected)
    assert [(c["topic"], c["partition"]) for c in counted[:-1]] == [
        ("web", 0),
        ("web", 1),
        ("web", 2),
    ]


def test_results_are_merged_in_time_order_across_partitions(
    loaded: LiveServer, apache: list[Record]
) -> None:
    hits = search(loaded, topic="web")
    assert [h["ts"] for h in hits] == sorted(r.ts for r in apache)
    assert {h["partition"] for h in hits} == {0, 1, 2}
    assert len({(h["partition"], h["offset"]) for h in hits}) == len(apache)
    newest = search(loaded, topic="web", order="desc")
    assert [h["ts"] for h in newest] == sorted((r.ts for r in apache), reverse=True)


def test_record_shape(loaded: LiveServer) -> None:
    (hit,) = search(loaded, topic="web", q="kibana-search.png", fixed=1, limit=1)
    assert set(hit) == {
        "topic",
        "partition",
        "offset",
        "ts",
        "host",
        "source",
        "line",
        "fields",
        "level",
    }
    assert hit["fields"]["status"] == 200 and hit["fields"]["method"] == "GET"
    assert hit["source"] == f"/var/log/{APACHE}"
    consumed = ndjson(loaded.url, f"/v1/topics/web/partitions/{hit['partition']}/records",
                      [("offset", hit["offset"]), ("max_bytes", 1)])  # fmt: skip
    assert consumed[0] == hit


def test_limit_and_order_give_the_oldest_and_newest(
    loaded: LiveServer, apache: list[Record]
) -> None:
    stamps = sorted(r.ts for r in apache if "404" in r.line)
    oldest = search(loaded, topic="web", q="404", limit=7)
    assert [h["ts"] for h in oldest] == stamps[:7]
    newest = search(loaded, topic="web", q="404", limit=7, order="desc")
    assert [h["ts"] for h in newest] == stamps[::-1][:7]
    done = ndjson(loaded.url, "/v1/search", [("topic", "web"), ("limit", 3), ("order", "desc")])[-1]
    assert done["stats"]["matched"] == 3
    # the newest records come from the last windows: the oldest batches are never read
    assert done["stats"]["batches_read"] < batches_in(loaded, "web")


def test_host_and_source_globs(loaded: LiveServer, apache: list[Record]) -> None:
    hits = search(loaded, topic="web", host="web-1")
    assert sorted(h["line"] for h in hits) == sorted(r.line for r in apache if r.host == "web-1")
    two = search(loaded, topic="web", host=["web-1", "web-4"], q="kibana")
    assert {h["host"] for h in two} == {"web-1", "web-4"}
    assert len(two) == sum(1 for r in apache if r.host != "web-2" and "kibana" in r.line)
    assert len(search(loaded, topic="web", host="web-[12]")) == sum(
        1 for r in apache if r.host in ("web-1", "web-2")
    )
    assert search(loaded, topic="web", host="db-*") == []
    assert len(search(loaded, source="*auth.log")) == len(log_lines(AUTH))


def test_time_range(loaded: LiveServer, apache: list[Record]) -> None:
    stamps = sorted(r.ts for r in apache)
    lo, hi = stamps[1000], stamps[3000]
    hits = search(loaded, topic="web", since=lo, until=hi)
    assert sorted(h["ts"] for h in hits) == [t for t in stamps if lo <= t < hi]
    done = ndjson(loaded.url, "/v1/search", [("topic", "web"), ("since", lo), ("until", hi)])[-1]
    assert done["stats"]["batches_read"] < batches_in(loaded, "web")  # pruned by the index
    assert search(loaded, topic="web", since=stamps[-1] + 1) == []


def test_where_expressions(loaded: LiveServer, apache: list[Record]) -> None:
    def expect(pred: Any) -> list[str]:
        return sorted(r.line for r in apache if pred(r.fields))

    got = search(loaded, topic="web", where="status>=500")
    assert sorted(h["line"] for h in got) == expect(lambda f: f.get("status", 0) >= 500)
    assert got
    got = search(loaded, topic="web", where='status=404 and path~"\\.php$"')
    assert sorted(h["line"] for h in got) == expect(
        lambda f: f.get("status") == 404 and f.get("path", "").endswith(".php")
    )
    got = search(loaded, topic="web", where="not (method=GET or status<400)", q="HTTP/1.1")
    # a missing field satisfies neither "method=GET" nor "status<400"
    assert sorted(h["line"] for h in got) == sorted(
        r.line
        for r in apache
        if "HTTP/1.1" in r.line
        and not (r.fields.get("method") == "GET" or r.fields.get("status", 1000) < 400)
    )
    counted = ndjson(
        loaded.url, "/v1/search", [("topic", "web"), ("where", "status>=500"), ("count", 1)]
    )
    assert counted[-1]["count"] == len(expect(lambda f: f.get("status", 0) >= 500))


def test_several_topics(loaded: LiveServer) -> None:
    every = search(loaded, q="sshd", icase=1)  # no topic: all of them
    assert {h["topic"] for h in every} == {"auth", "web"}
    assert sorted(h["line"] for h in every) == sorted(
        gnu_grep(["-i", "sshd"], AUTH) + gnu_grep(["-i", "sshd"], APACHE)
    )
    both = ndjson(loaded.url, "/v1/search", [("topic", "web,auth"), ("count", 1)])
    assert both[-1]["count"] == len(log_lines(APACHE)) + len(log_lines(AUTH))
    rep = ndjson(loaded.url, "/v1/search", [("topic", "auth"), ("topic", "web"), ("count", 1)])
    assert rep[-1]["count"] == both[-1]["count"]


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ([("q", "(unclosed")], 400, "missing )"),
        ([("q", "a{1001}")], 400, "invalid regular expression"),
        ([("where", "status>=")], 400, "at column 9: expected a value"),
        ([("where", "status>=500 level=error")], 400, "at column 13"),
        ([("topic", "nope")], 404, "no topic 'nope'"),
        ([("topic", "Bad Name")], 400, "invalid topic name"),
        ([("order", "sideways")], 400, "asc or desc"),
        ([("limit", "0")], 400, "limit=0 must be >= 1"),
        ([("limit", "ten")], 400, "not an integer"),
        ([("icase", "maybe")], 400, "not a boolean"),
        ([("since", "10"), ("until", "5")], 400, "empty time range"),
    ],
)
def test_bad_requests(
    loaded: LiveServer, params: list[tuple[str, str]], status: int, fragment: str
) -> None:
    got, body = request(loaded.url, "GET", "/v1/search", params)
    assert got == status, body
    assert isinstance(body, dict) and fragment in body["error"], body


# -- a client that goes away ----------------------------------------------------------------

BIG_BATCHES = 250
BIG_PER_BATCH = 2000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, int]]:
    """500,000 records in 250 batches, time-ordered like a real log."""
    with Store(Path(tmp_path_factory.mktemp("big")) / "data") as store:
        store.create_topic("big")
        for b in range(BIG_BATCHES):
            recs = [
                Record(ts=1_700_000_000_000_000_000 + b * BIG_PER_BATCH + i,
                       line=f"GET /item/{i} HTTP/1.1 200 " + "x" * 150,
                       host=f"h{i % 5}", fields={"status": 200, "n": i})
                for i in range(BIG_PER_BATCH)
            ]  # fmt: skip
            store.append("big", 0, wb.build(recs))
        total = store.describe("big").partitions[0].bytes
        with LiveServer(store) as srv:
            yield srv, total


def _hang_up_after(srv: LiveServer, query: str, read: int) -> None:
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(f"GET /v1/search?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = b""
        while len(got) < read:
            chunk = sock.recv(65536)
            assert chunk
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")


def _finished(srv: LiveServer) -> float:
    return sum(
        srv.metric("wharf_http_searches_total", {"outcome": o})
        for o in ("completed", "cancelled", "failed")
    )


def _wait_finished(srv: LiveServer, before: float) -> None:
    """Until one more search has finished than ``before`` (a safety deadline, not a speed test)."""
    deadline = time.monotonic() + 30
    while _finished(srv) == before:
        if time.monotonic() > deadline:
            raise AssertionError("the search never finished")
        time.sleep(0.02)


def test_disconnect_stops_a_streaming_search(big: tuple[LiveServer, int]) -> None:
    srv, total = big
    before = srv.metric("wharf_http_searches_total", {"outcome": "cancelled"})
    finished, bytes_before = _finished(srv), srv.metric("wharf_search_bytes_read_total")
    _hang_up_after(srv, "topic=big", read=100_000)
    _wait_finished(srv, finished)
    assert srv.metric("wharf_http_searches_total", {"outcome": "cancelled"}) == before + 1
    assert srv.metric("wharf_search_bytes_read_total") - bytes_before < total / 2


def test_disconnect_stops_a_search_that_finds_nothing(big: tuple[LiveServer, int]) -> None:
    """Nothing is written, so no write can fail: the handler notices the closed connection and
    the scanning thread stops at its next batch."""
    srv, total = big
    before = srv.metric("wharf_http_searches_total", {"outcome": "cancelled"})
    finished, bytes_before = _finished(srv), srv.metric("wharf_search_bytes_read_total")
    _hang_up_after(srv, "topic=big&where=status%3D999", read=12)
    _wait_finished(srv, finished)
    assert srv.metric("wharf_http_searches_total", {"outcome": "cancelled"}) == before + 1
    assert srv.metric("wharf_search_bytes_read_total") - bytes_before < total


def test_big_search_completes_when_read(big: tuple[LiveServer, int]) -> None:
    srv, _ = big
    counted = ndjson(srv.url, "/v1/search", [("topic", "big"), ("q", "/item/7"), ("count", 1)])
    assert counted[-1]["count"] == BIG_BATCHES * sum(
        1 for i in range(BIG_PER_BATCH) if "/item/7" in f"/item/{i} "
    )


def test_server_shutdown_ends_a_running_search(big: tuple[LiveServer, int]) -> None:
    """A client that stalls mid-search does not hold up shutdown, and the scan thread ends."""
    srv, _ = big
    with (
        LiveServer(srv.store) as other,
        socket.create_connection(("127.0.0.1", other.port)) as sock,
    ):
        sock.sendall(b"GET /v1/search?topic=big HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b'"line"' not in got:  # records flow: the scan thread runs; then stop reading
            got += sock.recv(65536)
        assert got.startswith(b"HTTP/1.1 200")
        assert other.metric("wharf_http_searches_active") == 1
    # LiveServer's exit waited for the app's cleanup, which joins the scan threads
    assert other.metric("wharf_http_searches_active") == 0
    assert other.metric("wharf_http_searches_total", {"outcome": "cancelled"}) == 1


@embedded_only
def test_a_damaged_batch_is_skipped_and_reported(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    for b in range(3):
        store.append(
            "app", 0, wb.build([Record(ts=b * 10 + i, line=f"b{b} r{i}") for i in range(10)])
        )
    damage_middle(store, "app")
    lines = ndjson(server.url, "/v1/search", [("topic", "app")])
    assert [h["line"] for h in lines[:-1]] == [f"b{b} r{i}" for b in (0, 2) for i in range(10)]
    stats = lines[-1]["stats"]
    assert stats["errors"] == 1 and "checksum" in stats["error_messages"][0]
