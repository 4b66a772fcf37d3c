"""``GET /v1/topics/{t}/partitions/{p}/context``: a record and its neighbours from the same host
and source, checked against the records as they were appended (``tests.http.console_data``:
the Kafka topic's partitions interleave two sources and several hosts), on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import LiveServer
from tests.http.conftest import BACKENDS
from tests.http.console_data import TOPICS, console_records, positions, serve_console_data
from tests.http.live import request
from wharf.record import Record

RECORDS = console_records()


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from serve_console_data(request, tmp_path_factory)


def stored(topic: str) -> dict[int, list[Record]]:
    """Each partition's records in offset order."""
    out: dict[int, list[Record]] = {}
    for p, o, r in positions(RECORDS[topic], TOPICS[topic]):
        out.setdefault(p, []).append(r)
        assert len(out[p]) == o + 1
    return out


def expected(topic: str, partition: int, offset: int, before: int, after: int) -> list[int]:
    recs = stored(topic)[partition]
    key = (recs[offset].host, recs[offset].source)
    same = [o for o, r in enumerate(recs) if (r.host, r.source) == key]
    i = same.index(offset)
    return same[max(0, i - before) : i + after + 1]


def context(srv: LiveServer, topic: str, partition: int, **params: Any) -> list[dict[str, Any]]:
    path = f"/v1/topics/{topic}/partitions/{partition}/context"
    status, body = request(srv.url, "GET", path, list(params.items()))
    assert status == 200, body
    assert isinstance(body, list) and body[-1]["done"] is True, body[-1:]
    return body[:-1]


def samples(topic: str) -> Iterator[tuple[int, int]]:
    for p, recs in sorted(stored(topic).items()):
        n = len(recs)
        for o in sorted({0, 1, 7, n // 3, n // 2, n - 2, n - 1}):
            yield p, o


@pytest.mark.parametrize("topic", ["kafka", "web"])
@pytest.mark.parametrize(("before", "after"), [(None, None), (0, 0), (3, 25), (1000, 1000)])
def test_neighbours_of_the_same_host_and_source(
    srv: LiveServer, topic: str, before: int | None, after: int | None
) -> None:
    recs = stored(topic)
    for p, o in samples(topic):
        params = {"offset": o}
        if before is not None:
            params |= {"before": before, "after": after}
        rows = context(srv, topic, p, **params)
        want = expected(
            topic, p, o, 10 if before is None else before, 10 if after is None else after
        )
        assert [r["offset"] for r in rows] == want, (p, o)
        assert [r["match"] for r in rows] == [r["offset"] == o for r in rows]
        assert {(r["topic"], r["partition"], r["group"]) for r in rows} == {(topic, p, 0)}
        assert [r["line"] for r in rows] == [recs[p][x].line for x in want]
        hit = next(r for r in rows if r["match"])
        assert (hit["host"], hit["source"], hit["ts"]) == (
            recs[p][o].host, recs[p][o].source, recs[p][o].ts
        )  # fmt: skip


def test_the_kafka_partitions_really_interleave_sources(srv: LiveServer) -> None:
    """Otherwise the test above would not show that other sources are skipped."""
    for p, recs in stored("kafka").items():
        keys = [(r.host, r.source) for r in recs[:200]]
        assert len(set(keys)) >= 2, p
        rows = context(srv, "kafka", p, offset=100, before=30, after=30)
        assert len({(r["host"], r["source"]) for r in rows}) == 1
        assert rows[-1]["offset"] - rows[0]["offset"] > 60  # others' records were skipped


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/v1/topics/web/partitions/0/context", [], 400, "parameter offset is required"),
        ("/v1/topics/web/partitions/0/context", [("offset", -1)], 400, "must be >= 0"),
        ("/v1/topics/web/partitions/0/context", [("offset", 3333)], 416, "past the end"),
        ("/v1/topics/web/partitions/0/context", [("offset", 10**12)], 416, "holds 0..3332"),
        ("/v1/topics/web/partitions/0/context", [("offset", 1), ("before", 1001)], 400, "exceeds"),
        ("/v1/topics/web/partitions/0/context", [("offset", 1), ("after", -1)], 400, ">= 0"),
        ("/v1/topics/web/partitions/0/context", [("offset", 1), ("n", 1)], 400, "unknown param"),
        ("/v1/topics/web/partitions/3/context", [("offset", 1)], 400, "partitions 0..2, not 3"),
        ("/v1/topics/web/partitions/x/context", [("offset", 1)], 400, "not a non-negative"),
        ("/v1/topics/nope/partitions/0/context", [("offset", 1)], 404, "nope"),
    ],
)
def test_bad_requests(
    srv: LiveServer, path: str, params: list[tuple[str, Any]], status: int, words: str
) -> None:
    got, body = request(srv.url, "GET", path, params)
    assert got == status, body
    assert words in body["error"] and body["code"]
