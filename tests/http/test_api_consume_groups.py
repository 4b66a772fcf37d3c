"""Consume by offset, and consumer groups: commit, describe with lag, reset, persistence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.groups import GroupStore
from collector.storage import Store
from collector.storage.jetstream import JetStreamStore
from tests.harness import LiveServer
from tests.http.conftest import embedded_only
from tests.http.live import ndjson, request
from wharf import batch as wb
from wharf.record import Record

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def fill(store: Store, topic: str = "app", batches: int = 5, per: int = 10) -> None:
    """``batches`` batches of ``per`` records; record n has ts T0 + n seconds, line ``rec-n``."""
    store.create_topic(topic)
    for b in range(batches):
        recs = [
            Record(ts=T0 + n * SECOND, line=f"rec-{n}", host="h", fields={"n": n})
            for n in range(b * per, (b + 1) * per)
        ]
        store.append(topic, 0, wb.build(recs))


def consume(srv: LiveServer, offset: int | None, max_bytes: int | None = None) -> list[Any]:
    params: list[tuple[str, Any]] = []
    if offset is not None:
        params.append(("offset", offset))
    if max_bytes is not None:
        params.append(("max_bytes", max_bytes))
    return ndjson(srv.url, "/v1/topics/app/partitions/0/records", params)


def test_consume_from_any_offset_to_the_end(server: LiveServer, store: Store) -> None:
    fill(store)
    page = consume(server, 13, max_bytes=1)  # one batch: offsets 10..19, from 13
    assert [r["offset"] for r in page[:-1]] == list(range(13, 20))
    assert [r["line"] for r in page[:-1]] == [f"rec-{n}" for n in range(13, 20)]
    assert page[-1] == {"next_offset": 20, "end_offset": 50}
    # page through everything
    offset, lines = 0, []
    while True:
        page = consume(server, offset, max_bytes=1)
        lines += [r["line"] for r in page[:-1]]
        if page[-1]["next_offset"] == offset:
            break
        offset = page[-1]["next_offset"]
    assert lines == [f"rec-{n}" for n in range(50)]
    assert offset == 50
    assert consume(server, 50) == [{"next_offset": 50, "end_offset": 50}]
    assert len(consume(server, None)) == 51  # default: from the start, 1 MiB


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        ("/v1/topics/app/partitions/0/records", [("offset", "-1")], 400, "must be >= 0"),
        ("/v1/topics/app/partitions/0/records", [("offset", "51")], 416, "past the end"),
        ("/v1/topics/app/partitions/0/records", [("offset", "x")], 400, "not an integer"),
        ("/v1/topics/app/partitions/0/records", [("max_bytes", "0")], 400, "max_bytes=0"),
        ("/v1/topics/app/partitions/0/records", [("max_bytes", str(1 << 30))], 400, "exceeds"),
        ("/v1/topics/app/partitions/3/records", [], 400, "partitions 0..0"),
        ("/v1/topics/app/partitions/x/records", [], 400, "not a non-negative integer"),
        ("/v1/topics/nope/partitions/0/records", [], 404, "no topic"),
    ],
)
def test_consume_bad_input(
    server: LiveServer,
    store: Store,
    path: str,
    params: list[tuple[str, str]],
    status: int,
    fragment: str,
) -> None:
    fill(store)
    got, body = request(server.url, "GET", path, params)
    assert got == status, body
    assert fragment in body["error"]


def group(srv: LiveServer, name: str) -> dict[str, Any]:
    status, body = request(srv.url, "GET", f"/v1/groups/{name}")
    assert status == 200, body
    return dict(body)


def post(srv: LiveServer, path: str, body: object) -> tuple[int, Any]:
    return request(srv.url, "POST", path, body=body)


def test_commit_describe_and_lag(server: LiveServer, store: Store) -> None:
    fill(store)
    assert request(server.url, "GET", "/v1/groups") == (200, {"groups": []})
    status, body = post(
        server, "/v1/groups/billing/commit", {"topic": "app", "partition": 0, "offset": 12}
    )
    assert status == 200, body
    assert body == group(server, "billing")
    assert body == {
        "group": "billing",
        "offsets": [{"topic": "app", "partition": 0, "committed": 12, "start_offset": 0,
                     "end_offset": 50, "lag": 38}],
        "lag": 38,
    }  # fmt: skip
    assert request(server.url, "GET", "/v1/groups") == (200, {"groups": ["billing"]})
    # lag follows new appends
    store.append("app", 0, wb.build([Record(ts=T0, line="late")]))
    assert group(server, "billing")["lag"] == 39
    if isinstance(store, Store):
        # the file on disk is what the docs say
        on_disk = json.loads((store.data_dir / "groups" / "billing.json").read_bytes())
        assert on_disk == {"group": "billing", "offsets": {"app": {"0": 12}}}
        assert not list((store.data_dir / "groups").glob("*.tmp"))
        # and it survives a restart of the group store
        assert GroupStore(store.data_dir).load("billing") == {"app": {"0": 12}}
    else:
        # in the cluster's bucket: another collector's connection reads the same commit
        with JetStreamStore(store.client.urls, name=store.name, replicas=1) as other:
            assert other.group_offsets().load("billing") == {"app": {"0": 12}}


def test_reset_to_time_offset_earliest_latest(server: LiveServer, store: Store) -> None:
    fill(store)

    def reset(body: dict[str, Any]) -> int:
        status, answer = post(server, "/v1/groups/g/reset", {"topic": "app", **body})
        assert status == 200, answer
        return int(answer["offsets"][0]["committed"])

    assert reset({"to_time": T0 + 27 * SECOND}) == 27
    assert reset({"to_time": T0 + 27 * SECOND + 1}) == 28
    assert reset({"to_time": 0}) == 0
    assert reset({"to_time": T0 + 10_000 * SECOND}) == 50
    assert reset({"to_offset": 33}) == 33
    assert reset({"to_offset": 10_000}) == 50  # clamped, as Kafka's tool does
    assert reset({"to": "earliest"}) == 0
    assert reset({"to": "latest"}) == 50
    assert reset({"to_offset": 7, "partition": 0}) == 7
    assert group(server, "g")["lag"] == 43


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/groups/g/commit", {"topic": "app", "partition": 0, "offset": 51}, 400, "outside"),
        ("/v1/groups/g/commit", {"topic": "app", "partition": 0, "offset": -1}, 400, "outside"),
        (
            "/v1/groups/g/commit",
            {"topic": "app", "partition": 2, "offset": 0},
            400,
            "partitions 0..0",
        ),
        ("/v1/groups/g/commit", {"topic": "nope", "partition": 0, "offset": 0}, 404, "no topic"),
        (
            "/v1/groups/g/commit",
            {"topic": "app", "offset": 0},
            400,
            "missing required field `partition`",
        ),
        (
            "/v1/groups/Bad..Name/commit",
            {"topic": "app", "partition": 0, "offset": 0},
            400,
            "invalid group name",
        ),
        ("/v1/groups/g/reset", {"topic": "app"}, 400, "exactly one of"),
        (
            "/v1/groups/g/reset",
            {"topic": "app", "to": "earliest", "to_offset": 1},
            400,
            "exactly one of",
        ),
        ("/v1/groups/g/reset", {"topic": "app", "to": "middle"}, 400, "invalid request body"),
    ],
)
def test_group_bad_input(
    server: LiveServer, store: Store, path: str, body: object, status: int, fragment: str
) -> None:
    fill(store)
    got, answer = post(server, path, body)
    assert got == status, answer
    assert fragment in answer["error"]


@embedded_only
def test_unknown_group_and_damaged_file(server: LiveServer, store: Store) -> None:
    assert request(server.url, "GET", "/v1/groups/nobody") == (
        404,
        {"error": "no consumer group 'nobody'", "code": "unknown_group", "retriable": False},
    )
    status, body = request(server.url, "GET", "/v1/groups/..")
    assert status in (400, 404) and "error" in body
    groups_dir: Path = store.data_dir / "groups"
    groups_dir.mkdir()
    (groups_dir / "broken.json").write_text("{not json")
    status, body = request(server.url, "GET", "/v1/groups/broken")
    assert status == 500 and "damaged group file" in body["error"]
