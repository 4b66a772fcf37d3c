"""``cli.http_client``: typed requests in, typed rows and answers out, and every error answer
re-raised as the Wharf error its code names. Against the real API (in process, port 0), and a
small stand-in server for what the real one never sends (an older collector's code-less
errors, a broken stream)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cli.http_client import Client, Unreachable, is_error
from collector.storage import Store, TopicConfig
from tests.harness import LiveServer
from wharf import batch as wb
from wharf.api import (
    CommitRequest,
    ConsumeEnd,
    ConsumeRequest,
    ContextHit,
    CreateTopic,
    Done,
    FileCount,
    Heartbeat,
    Hit,
    PartitionCount,
    ResetRequest,
    SearchRequest,
    TailRequest,
    TopicSizes,
)
from wharf.errors import (
    InvalidArgument,
    NotFound,
    OffsetOutOfRange,
    StoreError,
    TopicExists,
    Unavailable,
    UnknownGroup,
    UnknownTopic,
    UnrecognizedError,
    WharfError,
)
from wharf.record import Record

T0 = 1_700_000_000_000_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Client]:
    """A client of the real API around a store with topic ``app``: 10 records, 2 batches."""
    with Store(tmp_path / "data") as store:
        store.create_topic("app", TopicConfig(partitions=1))
        for b in range(2):
            recs = [Record(ts=T0 + 5 * b + i, line=f"line {5 * b + i}", host="h", source="s",
                           fields={"i": 5 * b + i}, level="info") for i in range(5)]  # fmt: skip
            store.append("app", 0, wb.build(recs))
        with LiveServer(store, heartbeat_s=0.2) as srv:
            yield Client(srv.url, timeout=10)


# -- typed answers ------------------------------------------------------------------------------


def test_search_rows_are_structs(api: Client) -> None:
    rows = list(api.search(SearchRequest(topics=("app",), q="line [13]$")))
    assert [type(r) for r in rows] == [Hit, Hit, Done]
    hits = [r for r in rows if isinstance(r, Hit)]
    assert [(h.offset, h.line, h.fields, h.level) for h in hits] == [
        (1, "line 1", {"i": 1}, "info"),
        (3, "line 3", {"i": 3}, "info"),
    ]
    done = rows[-1]
    assert isinstance(done, Done) and done.stats.matched == 2
    ctx = list(api.search(SearchRequest(topics=("app",), q="line 4$", before=1, after=0)))
    assert [(type(r), getattr(r, "match", None)) for r in ctx] == [
        (ContextHit, False),
        (ContextHit, True),
        (Done, None),
    ]
    counts = list(api.search(SearchRequest(topics=("app",), count=True)))
    assert isinstance(counts[0], PartitionCount) and counts[0].count == 10
    files = list(api.search(SearchRequest(topics=("app",), files=True)))
    assert isinstance(files[0], FileCount) and (files[0].host, files[0].source) == ("h", "s")


def test_tail_rows_are_structs(api: Client) -> None:
    rows = api.tail(TailRequest(topics=("app",), n=2), stall_s=10)
    got = [next(rows) for _ in range(3)]
    assert [(type(r), getattr(r, "offset", None)) for r in got] == [
        (Hit, 8),
        (Hit, 9),
        (Heartbeat, None),
    ]
    assert isinstance(got[2], Heartbeat) and got[2].cursor == "app:0:10"


def test_consume_offsets_topics_and_groups(api: Client) -> None:
    answer = api.consume("app", 0, ConsumeRequest(offset=7))
    assert [r.offset for r in answer.records][-3:] == [7, 8, 9]
    assert answer.end == ConsumeEnd(next_offset=10, end_offset=10)
    assert api.offset_for_time("app", 0, T0 + 6).offset == 6
    topic = api.topic("app")
    assert isinstance(topic, TopicSizes) and topic.records == 10 and topic.config.partitions == 1
    assert [t.name for t in api.topics().topics] == ["app"]
    created = api.create_topic(CreateTopic("more", partitions=3))
    assert (created.name, len(created.partitions)) == ("more", 3)
    api.delete_topic("more")
    assert [t.name for t in api.topics().topics] == ["app"]
    assert api.commit("etl", CommitRequest("app", 0, 4)).lag == 6
    assert api.groups().groups == ["etl"]
    assert api.reset("etl", ResetRequest("app", to="latest")).offsets[0].committed == 10
    assert api.group("etl").lag == 0
    assert api.status()["status"] == "ok"


# -- typed errors -------------------------------------------------------------------------------


def test_an_unknown_topic_raises_unknown_topic(api: Client) -> None:
    with pytest.raises(UnknownTopic, match=r"^no topic 'nope' \(HTTP 404\)$") as caught:
        api.topic("nope")
    assert caught.value.code == "unknown_topic" and not caught.value.retriable
    with pytest.raises(UnknownTopic):
        list(api.search(SearchRequest(topics=("nope",))))
    with pytest.raises(UnknownTopic):
        api.consume("nope", 0, ConsumeRequest())
    with pytest.raises(UnknownTopic):
        next(api.tail(TailRequest(topics=("nope",))))


def test_other_errors_by_their_code(api: Client) -> None:
    with pytest.raises(UnknownGroup, match="no consumer group 'nope'"):
        api.group("nope")
    with pytest.raises(TopicExists):
        api.create_topic(CreateTopic("app"))
    with pytest.raises(InvalidArgument, match="group name"):
        api.group("Bad/Name")
    with pytest.raises(NotFound):
        api.stream("/v1/nothing-here").__next__()


def test_retention_is_offset_out_of_range(tmp_path: Path) -> None:
    now_ms = [1_000_000]
    with Store(tmp_path / "data", clock_ms=lambda: now_ms[0]) as store:
        store.create_topic("app", TopicConfig(partitions=1, retention_ms=1000, segment_ms=1))
        for b in range(3):  # one segment each (segment_ms=1); the first two expire
            store.append("app", 0, wb.build([Record(ts=T0 + b, line=f"b{b}")]))
            now_ms[0] += 10
        assert store.enforce_retention(now_ms[0] + 1000 - 15) == 2
        with LiveServer(store) as srv, pytest.raises(OffsetOutOfRange) as caught:
            Client(srv.url).consume("app", 0, ConsumeRequest(offset=0))
    assert caught.value.code == "offset_out_of_range" and is_error(caught.value, OffsetOutOfRange)


def test_an_unreachable_collector_is_unavailable() -> None:
    with pytest.raises(Unreachable, match=r"cannot reach the collector at http://127\.0\.0\.1:9"):
        Client("http://127.0.0.1:9").topics()
    with pytest.raises(Unavailable) as caught:  # a retry can help: the code and flag say so
        Client("http://127.0.0.1:9").topics()
    assert caught.value.retriable and caught.value.code == "unavailable"


# -- what an older or broken server sends -------------------------------------------------------


class _Canned(BaseHTTPRequestHandler):
    """Answers by path: (status, content type, body)."""

    ANSWERS: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "/v1/groups/old": (404, "application/json", b'{"error": "no consumer group \'old\'"}'),
        "/v1/topics/proxy": (502, "text/html", b"<html>Bad Gateway</html>"),
        "/v1/topics/newer": (
            418,
            "application/json",
            b'{"error": "a teapot", "code": "teapot", "retriable": true}',
        ),
        "/v1/search": (
            200,
            "application/x-ndjson",
            b'{"progress": {"bytes_read": 1, "bytes_total": 2, "batches_read": 1, '
            b'"matched": 0, "elapsed_ms": 1.0}}\n'
            b'{"error": "disk on fire", "code": "store_error", "retriable": true}\n',
        ),
        "/v1/tail": (200, "application/x-ndjson", b'{"heartbeat": true, "cursor": ""}\n{"top'),
    }

    def do_GET(self) -> None:
        status, kind, body = self.ANSWERS[self.path.partition("?")[0]]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[Client]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(f"http://127.0.0.1:{srv.server_address[1]}", timeout=10)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def test_an_error_without_a_code_keeps_message_and_status(canned: Client) -> None:
    with pytest.raises(UnrecognizedError) as caught:
        canned.group("old")
    exc = caught.value
    assert str(exc) == "no consumer group 'old' (HTTP 404)"
    assert (exc.code, exc.status, exc.retriable) == ("", 404, False)
    assert is_error(exc, UnknownGroup) and is_error(exc, NotFound)  # both are 404s
    assert not is_error(exc, OffsetOutOfRange)
    with pytest.raises(UnrecognizedError, match=r"<html>Bad Gateway</html> \(HTTP 502\)"):
        canned.topic("proxy")


def test_a_code_this_version_does_not_know(canned: Client) -> None:
    with pytest.raises(UnrecognizedError) as caught:
        canned.topic("newer")
    assert (caught.value.code, caught.value.status, caught.value.retriable) == ("teapot", 418, True)


def test_an_error_line_ends_a_stream_with_its_error(canned: Client) -> None:
    rows = canned.search(SearchRequest(progress=True))
    assert next(rows).__class__.__name__ == "Progress"
    with pytest.raises(StoreError, match="disk on fire") as caught:
        next(rows)
    assert caught.value.retriable


def test_a_stream_cut_mid_line_is_unreachable(canned: Client) -> None:
    rows = canned.tail(TailRequest())
    assert isinstance(next(rows), Heartbeat)
    with pytest.raises(Unreachable, match="ended in the middle of a line"):
        next(rows)


def test_every_client_error_is_a_wharf_error() -> None:
    with pytest.raises(WharfError, match="must look like http://HOST:PORT"):
        Client("ftp://x")
