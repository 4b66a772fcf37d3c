"""``GET /v1/tail``: live records, backfill, filters, heartbeats, resume with ``from=``."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.http_client import Client
from collector.storage import Store, TopicConfig
from tests.harness import LiveServer
from tests.http.live import request
from wharf import batch as wb
from wharf.record import Record

T0 = 1_700_000_000_000_000_000


def append(
    store: Store, topic: str, lines: list[str], *, host: str = "h1", partition: int = 0
) -> None:
    recs = [Record(ts=T0 + i, line=line, host=host) for i, line in enumerate(lines)]
    store.append(topic, partition, wb.build(recs))


def next_record(stream: Iterator[Any]) -> dict[str, Any]:
    for item in stream:
        if not item.get("heartbeat"):
            return dict(item)
    raise AssertionError("the stream ended")


def tail(srv: LiveServer, *params: tuple[str, Any]) -> Iterator[Any]:
    # The timeout is a safety net against a hung test, not a speed assertion.
    return Client(srv.url, timeout=10).stream("/v1/tail", list(params), timeout=10)


def test_a_record_appended_after_connecting_arrives(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    append(store, "app", ["old line"])
    stream = tail(server, ("topic", "app"))
    first = next(stream)
    assert first == {"heartbeat": True, "cursor": "app:0:1"}
    append(store, "app", ["new line"])
    rec = next_record(stream)
    assert (rec["line"], rec["offset"], rec["topic"], rec["partition"]) == ("new line", 1, "app", 0)
    stream.close()


def test_backfill_then_follow(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    append(store, "app", [f"line {i}" for i in range(20)])
    stream = tail(server, ("topic", "app"), ("n", 5))
    got = [next(stream) for _ in range(6)]
    assert [g["line"] for g in got[:5]] == [f"line {i}" for i in range(15, 20)]
    assert got[5] == {"heartbeat": True, "cursor": "app:0:20"}
    append(store, "app", ["line 20"])
    assert next_record(stream)["line"] == "line 20"
    stream.close()


def test_filters_apply_to_live_records(server: LiveServer, store: Store) -> None:
    store.create_topic("app", TopicConfig(partitions=2))
    stream = tail(server, ("topic", "app"), ("q", "error"), ("icase", 1), ("host", "web-*"),
                  ("where", "level=error"))  # fmt: skip
    next(stream)
    store.append("app", 0, wb.build([
        Record(ts=T0, line="ERROR one", host="web-1", level="error"),
        Record(ts=T0, line="ERROR wrong host", host="db-1", level="error"),
        Record(ts=T0, line="info only", host="web-1", level="info"),
        Record(ts=T0, line="error but info level", host="web-1", level="info"),
    ]))  # fmt: skip
    store.append("app", 1, wb.build([Record(ts=T0, line="error two", host="web-2", level="error")]))
    got = {next_record(stream)["line"] for _ in range(2)}
    assert got == {"ERROR one", "error two"}
    stream.close()


def test_heartbeats_when_idle(server: LiveServer, store: Store) -> None:
    store.create_topic("quiet")
    stream = tail(server, ("topic", "quiet"))
    beats = [next(stream) for _ in range(3)]
    assert beats == [{"heartbeat": True, "cursor": "quiet:0:0"}] * 3
    stream.close()


def test_resume_from_cursor_without_gaps_or_repeats(server: LiveServer, store: Store) -> None:
    store.create_topic("app", TopicConfig(partitions=2))
    stream = tail(server, ("topic", "app"))
    cursor = next(stream)["cursor"]
    append(store, "app", ["a0", "a1"], partition=0)
    append(store, "app", ["b0"], partition=1)
    seen = [next_record(stream) for _ in range(3)]
    stream.close()
    positions = dict(_parse(cursor))
    for r in seen:
        positions[(r["topic"], r["partition"])] = r["offset"] + 1
    # while the client is away
    append(store, "app", ["a2", "a3"], partition=0)
    append(store, "app", ["b1"], partition=1)
    resume = ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(positions.items()))
    stream = tail(server, ("topic", "app"), ("from", resume), ("n", 100))  # n is ignored with from
    got = [next_record(stream) for _ in range(3)]
    assert sorted(g["line"] for g in got) == ["a2", "a3", "b1"]
    stream.close()
    # the short form for one topic
    stream = tail(server, ("topic", "app"), ("from", "0:3"))
    assert next_record(stream)["line"] == "a3"
    stream.close()


def test_resume_across_a_collector_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store(data) as store, LiveServer(store) as srv:
        store.create_topic("app")
        stream = tail(srv, ("topic", "app"))
        next(stream)
        append(store, "app", ["one", "two"])
        last = [next_record(stream) for _ in range(2)][-1]
        stream.close()
    cursor = f"app:0:{last['offset'] + 1}"
    with Store(data) as store:
        append(store, "app", ["three"])  # written while no tail was connected
        with LiveServer(store) as srv:
            stream = tail(srv, ("topic", "app"), ("from", cursor))
            assert next_record(stream)["line"] == "three"
            append(store, "app", ["four"])
            assert next_record(stream)["line"] == "four"
            stream.close()


def test_closing_the_client_ends_the_tail(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    stream = tail(server, ("topic", "app"))
    next(stream)
    assert server.metric("wharf_http_tails_active") == 1
    stream.close()
    deadline = time.monotonic() + 10
    while server.metric("wharf_http_tails_active") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.metric("wharf_http_tails_active") == 0


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ([("topic", "app"), ("from", "0:99")], 416, "past the end"),
        ([("topic", "app"), ("from", "garbage")], 400, "topic:partition:offset"),
        ([("topic", "app"), ("from", "app:5:0")], 400, "no partition 5"),
        ([("topic", "app"), ("from", "other:0:0")], 400, "not being tailed"),
        ([("topic", "app"), ("n", "-1")], 400, "n=-1"),
        ([("topic", "app"), ("n", "100000")], 400, "exceeds"),
        ([("topic", "nope")], 404, "no topic"),
        ([("topic", "app"), ("q", "(")], 400, "missing )"),
    ],
)
def test_bad_tail_requests(
    server: LiveServer, store: Store, params: list[tuple[str, str]], status: int, fragment: str
) -> None:
    store.create_topic("app")
    got, body = request(server.url, "GET", "/v1/tail", params)
    assert got == status, body
    assert fragment in body["error"]


def _parse(cursor: str) -> Iterator[tuple[tuple[str, int], int]]:
    for item in cursor.split(","):
        t, p, o = item.split(":")
        yield (t, int(p)), int(o)


def test_a_tail_of_every_topic_follows_topics_created_later(
    server: LiveServer, store: Store
) -> None:
    """No ``topic=``: every topic, also those that appear while the tail runs (a fresh
    collector has none when ``wharf tail`` starts), and deleting one does not end the tail."""
    got: queue.Queue[dict[str, Any]] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        for item in Client(server.url).stream("/v1/tail", [("n", 5)], timeout=30):
            got.put(item)
            if stop.is_set():
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert got.get(timeout=30)["heartbeat"]  # started, with no topic at all
    store.create_topic("late")
    store.append("late", 0, wb.build([Record(ts=1, line="first"), Record(ts=2, line="second")]))
    lines = [_next_record(got)["line"], _next_record(got)["line"]]
    assert lines == ["first", "second"]
    store.create_topic("gone")
    store.delete_topic("gone")
    store.append("late", 0, wb.build([Record(ts=3, line="third")]))
    assert _next_record(got)["line"] == "third"
    stop.set()
    store.append("late", 0, wb.build([Record(ts=4, line="bye")]))
    reader.join(30)


def _next_record(got: queue.Queue[dict[str, Any]]) -> dict[str, Any]:
    while True:
        item = got.get(timeout=30)
        if "line" in item:
            return item
        assert "error" not in item, item
