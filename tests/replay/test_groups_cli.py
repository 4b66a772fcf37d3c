"""``wharf groups list | describe | reset`` and the offset-by-time lookup, against the real API."""

from __future__ import annotations

import json

from cli.render import rfc3339_ns
from collector.storage import Store
from tests.harness import LiveServer
from tests.http.live import request
from tests.replay.helpers import SECOND, T0, assert_one_error_line, load_topic, wharf


def committed(url: str, group: str) -> dict[int, int | None]:
    status, body = request(url, "GET", f"/v1/groups/{group}")
    assert status == 200, body
    return {r["partition"]: r["committed"] for r in body["offsets"]}


def test_list_and_describe(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 20)
    assert wharf(server.url, "replay", "-t", "app", "-g", "etl", "--to-offset", "5").returncode == 0
    assert wharf(server.url, "replay", "-t", "app", "-g", "all").returncode == 0

    listed = wharf(server.url, "groups", "list")  # piped: JSON lines
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert rows == [
        {"group": "all", "topics": ["app"], "lag": 0},
        {"group": "etl", "topics": ["app"], "lag": 45},
    ]
    table = wharf(server.url, "groups", "list", "-o", "table")
    assert "etl" in table.stdout and "45" in table.stdout and "app" in table.stdout

    described = wharf(server.url, "groups", "describe", "etl", "-o", "json")
    body = json.loads(described.stdout)
    assert body["lag"] == 45
    assert [
        (r["partition"], r["committed"], r["end_offset"], r["lag"]) for r in body["offsets"]
    ] == [
        (0, 5, 20, 15),
        (1, 5, 20, 15),
        (2, 5, 20, 15),
    ]
    table = wharf(server.url, "groups", "describe", "etl", "-o", "table")
    assert table.returncode == 0 and "lag 45" in table.stdout


def test_reset_each_way(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 20)
    url = server.url
    done = wharf(url, "groups", "reset", "etl", "-t", "app", "--to-latest")
    assert done.returncode == 0, done.stderr
    assert committed(url, "etl") == {0: 20, 1: 20, 2: 20}
    done = wharf(url, "groups", "reset", "etl", "-t", "app", "--to-earliest", "-o", "table")
    assert done.returncode == 0 and "reset" in done.stdout
    assert committed(url, "etl") == {0: 0, 1: 0, 2: 0}
    done = wharf(url, "groups", "reset", "etl", "-t", "app", "--to-offset", "7", "--partition", "2")
    assert done.returncode == 0, done.stderr
    assert committed(url, "etl") == {0: 0, 1: 0, 2: 7}
    when = rfc3339_ns(T0 + 12 * SECOND)
    done = wharf(url, "groups", "reset", "etl", "--to-time", when)  # every topic of the group
    assert done.returncode == 0, done.stderr
    assert committed(url, "etl") == {0: 12, 1: 12, 2: 12}
    # A replay with the group starts there.
    replayed = wharf(url, "replay", "-t", "app", "-g", "etl", "--partition", "0", "-o", "raw")
    assert replayed.stdout.splitlines()[0] == "web-2 request 12 status=200"
    assert committed(url, "etl") == {0: 20, 1: 12, 2: 12}


def test_group_errors_are_one_line(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 3)
    url = server.url
    assert_one_error_line(wharf(url, "groups", "describe", "nope"), "no consumer group 'nope'")
    assert_one_error_line(
        wharf(url, "groups", "reset", "g", "-t", "app"), "give exactly one of --to-time"
    )
    assert_one_error_line(
        wharf(url, "groups", "reset", "g", "-t", "app", "--to-latest", "--to-offset", "1"),
        "(got --to-offset and --to-latest)",
    )
    assert_one_error_line(wharf(url, "groups", "reset", "g", "-t", "nope", "--to-latest"), "nope")
    assert_one_error_line(wharf(url, "groups", "describe", "Bad/Name"), "group name")
    assert_one_error_line(
        wharf(url, "groups", "reset", "new", "--to-latest"), "name the topic with -t"
    )
    assert_one_error_line(wharf(url, "groups", "list", "-o", "xml"), "unknown output format")
    assert_one_error_line(
        wharf(url, "replay", "-t", "app", "-g", "Bad"), "invalid group name 'Bad'"
    )


def test_offset_lookup_endpoint(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 20)
    path = "/v1/topics/app/partitions/1/offset"
    for ts, want in ((0, 0), (T0 + 7 * SECOND, 7), (T0 + 7 * SECOND + 1, 8), (T0 * 2, 20)):
        status, body = request(server.url, "GET", path, [("time", ts)])
        assert status == 200, body
        assert body == {
            "topic": "app",
            "partition": 1,
            "time": ts,
            "offset": want,
            "start_offset": 0,
            "end_offset": 20,
        }
    assert request(server.url, "GET", path)[0] == 400
    assert request(server.url, "GET", path, [("time", "x")])[0] == 400
    assert (
        request(server.url, "GET", "/v1/topics/nope/partitions/0/offset", [("time", 1)])[0] == 404
    )
    assert request(server.url, "GET", "/v1/topics/app/partitions/9/offset", [("time", 1)])[0] == 400
