"""Topics, health, metrics, errors and auth over a real HTTP server around a real store."""

from __future__ import annotations

import pytest

from collector.storage import Store
from tests.harness import LiveServer
from tests.http.live import auth_config, load, log_records, request
from wharf import batch as wb
from wharf.record import Record


def test_healthz_and_metrics(server: LiveServer) -> None:
    assert request(server.url, "GET", "/healthz") == (200, {"status": "ok"})
    request(server.url, "GET", "/v1/topics")
    status, text = request(server.url, "GET", "/metrics")
    assert status == 200
    assert 'wharf_http_requests_total{route="/v1/topics",status="200"} 1.0' in text
    assert "# TYPE wharf_http_searches_active gauge" in text


def test_topic_shape_is_the_public_contract(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    store.append("app", 0, wb.build([Record(ts=5, line="a"), Record(ts=9, line="b")]))
    status, body = request(server.url, "GET", "/v1/topics/app")
    assert status == 200
    assert body["name"] == "app"
    # compaction: null where the backend does not compact (the cluster)
    compaction = (
        {"segments": 0, "bytes_before": 0, "bytes_after": 0, "filter_bytes": 0}
        if isinstance(store, Store)
        else None
    )
    assert body["partitions"] == [
        {"partition": 0, "start_offset": 0, "end_offset": 2, "bytes": body["partitions"][0]["bytes"],
         "segments": 1, "min_ts": 5, "max_ts": 9, "compaction": compaction, "line_bytes": 4}
    ]  # fmt: skip
    assert body["partitions"][0]["bytes"] > 0
    # "a\nb\n": the lines' size in a file, exact; the ratio is raw over stored bytes
    assert (body["records"], body["line_bytes"], body["min_ts"], body["max_ts"]) == (2, 4, 5, 9)
    assert body["compression_ratio"] == round(4 / body["bytes"], 3)
    assert body["config"]["partitions"] == 1
    status, listing = request(server.url, "GET", "/v1/topics")
    assert status == 200 and listing == {"topics": [body]}


def test_create_and_delete(server: LiveServer, store: Store) -> None:
    status, body = request(
        server.url,
        "POST",
        "/v1/topics",
        body={"name": "nginx", "partitions": 4, "retention_ms": 1000},
    )
    assert status == 201, body
    assert len(body["partitions"]) == 4 and body["config"]["retention_ms"] == 1000
    assert body["config"]["segment_bytes"] == store.default_config.segment_bytes  # a default
    assert store.describe("nginx").config.partitions == 4
    status, body = request(server.url, "POST", "/v1/topics", body={"name": "nginx"})
    assert status == 409 and "exists" in body["error"]
    assert request(server.url, "DELETE", "/v1/topics/nginx") == (200, {"deleted": "nginx"})
    assert store.topics() == []
    status, body = request(server.url, "DELETE", "/v1/topics/nginx")
    assert status == 404 and body == {
        "error": "no topic 'nginx'",
        "code": "unknown_topic",
        "retriable": False,
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "Bad/Name"}, "invalid topic name"),
        ({"name": "ok", "partitions": 0}, "partition count 0"),
        ({"name": "ok", "partitions": "many"}, "Expected `int | null`"),
        ({"name": "ok", "colour": "red"}, "unknown field `colour`"),
        ({"partitions": 2}, "missing required field `name`"),
        (b"{not json", "invalid request body"),
    ],
)
def test_create_rejects_bad_input(server: LiveServer, body: object, fragment: str) -> None:
    status, answer = request(server.url, "POST", "/v1/topics", body=body)
    assert status == 400, answer
    assert fragment in answer["error"]


def test_errors_are_json(server: LiveServer) -> None:
    assert request(server.url, "GET", "/v1/topics/nope") == (
        404,
        {"error": "no topic 'nope'", "code": "unknown_topic", "retriable": False},
    )
    status, body = request(server.url, "GET", "/v1/topics/..")
    assert status in (400, 404) and "error" in body
    status, body = request(server.url, "GET", "/v1/nothing-here")
    assert status == 404 and body["error"].startswith("Not Found")
    status, body = request(server.url, "PUT", "/v1/topics")
    assert status == 405 and "error" in body


def test_auth_read_and_write_tokens(store: Store) -> None:
    load(store, "auth", log_records("auth.log", "syslog")[:50], partitions=1)
    config = auth_config(read=["r-token"], write=["w-token"])
    with LiveServer(store, config) as srv:
        url = srv.url
        # open endpoints
        assert request(url, "GET", "/healthz")[0] == 200
        assert request(url, "GET", "/metrics")[0] == 200
        # reads: 401 without a token, 403 with a wrong one, 200 with read or write tokens
        status, body = request(url, "GET", "/v1/topics")
        assert status == 401 and "Bearer" in body["error"]
        assert request(url, "GET", "/v1/topics", token="nope")[0] == 403
        assert request(url, "GET", "/v1/topics", token="r-token")[0] == 200
        assert request(url, "GET", "/v1/topics", token="w-token")[0] == 200
        assert request(url, "GET", "/v1/search", [("q", "sshd")], token="r-token")[0] == 200
        assert request(url, "GET", "/v1/search", [("q", "sshd")])[0] == 401
        # writes need the write token
        new = {"name": "fresh"}
        assert request(url, "POST", "/v1/topics", body=new)[0] == 401
        status, body = request(url, "POST", "/v1/topics", body=new, token="r-token")
        assert status == 403 and "write token" in body["error"]
        assert request(url, "POST", "/v1/topics", body=new, token="w-token")[0] == 201
        assert request(url, "DELETE", "/v1/topics/fresh", token="r-token")[0] == 403
        assert request(url, "DELETE", "/v1/topics/fresh", token="w-token")[0] == 200
        # group commits are a reader's business
        commit = {"topic": "auth", "partition": 0, "offset": 3}
        assert request(url, "POST", "/v1/groups/g/commit", body=commit)[0] == 401
        assert request(url, "POST", "/v1/groups/g/commit", body=commit, token="x")[0] == 403
        assert request(url, "POST", "/v1/groups/g/commit", body=commit, token="r-token")[0] == 200
        assert request(url, "GET", "/v1/groups/g", token="r-token")[0] == 200


def test_no_tokens_means_open(server: LiveServer) -> None:
    assert request(server.url, "POST", "/v1/topics", body={"name": "x"})[0] == 201
    assert request(server.url, "GET", "/v1/topics", token="anything")[0] == 200


def test_healthz_fails_once_the_store_is_closed(server: LiveServer, store: Store) -> None:
    assert request(server.url, "GET", "/healthz")[0] == 200
    store.close()
    status, body = request(server.url, "GET", "/healthz")
    assert status == 503 and body["status"] == "unavailable" and "closed" in body["error"]
