"""``/v1/search`` paging: ``limit`` cuts the stream, the ``Done`` row's ``cursor`` resumes it,
and the pages put together are exactly the unpaged answer (no gap, no repeat, same order),
oldest or newest first, across partitions and topics whose records are not in time order
(``tests.http.console_data``), on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import LiveServer
from tests.http.conftest import BACKENDS, AnyStore
from tests.http.console_data import console_records, flat, serve_console_data
from tests.http.live import load, ndjson, request
from wharf import batch as wb
from wharf.record import Record
from wharf.topics import partition_for

RECORDS = console_records()
# Pages a run may take at most: every loop here ends.
MAX_PAGES = 100


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from serve_console_data(request, tmp_path_factory)


Place = tuple[str, int, int]


def search(srv: LiveServer, params: dict[str, Any]) -> tuple[list[Place], dict[str, Any]]:
    rows = ndjson(srv.url, "/v1/search", flat(params))
    done = rows[-1]
    assert done.get("done") is True, done
    return [(r["topic"], r["partition"], r["offset"]) for r in rows[:-1]], done


def pages(
    srv: LiveServer, params: dict[str, Any], limit: int
) -> tuple[list[list[Place]], list[str]]:
    """Every page of ``params`` and the cursors that led to them."""
    out: list[list[Place]] = []
    cursors: list[str] = []
    cursor = None
    for _ in range(MAX_PAGES):
        extra = {"from": cursor} if cursor is not None else {}
        hits, done = search(srv, {**params, **extra, "limit": limit})
        out.append(hits)
        cursor = done.get("cursor")
        if cursor is None:
            assert len(hits) <= limit
            return out, cursors
        assert len(hits) == limit
        cursors.append(cursor)
    raise AssertionError(f"still paging after {MAX_PAGES} pages")


CASES = [
    {"topic": ["web", "auth"]},
    {"topic": ["kafka", "web"], "q": "e", "icase": 1},
    {"topic": ["sorted", "nginx"]},
    {"topic": ["web", "kafka", "auth"], "where": 'message~"[0-9]"', "level": ["none", "info+"]},
]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("params", CASES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_pages_put_together_are_the_unpaged_answer(
    srv: LiveServer, params: dict[str, Any], order: str
) -> None:
    whole, done = search(srv, {**params, "order": order})
    assert "cursor" not in done  # no limit, nothing cut
    assert len(whole) >= 10_000
    got, _ = pages(srv, {**params, "order": order}, 1000)
    assert [p for page in got for p in page] == whole
    assert len(got) == -(-len(whole) // 1000) + (len(whole) % 1000 == 0)


def test_records_out_of_time_order_need_the_last_hit_in_the_cursor(srv: LiveServer) -> None:
    _, cursors = pages(srv, {"topic": ["web", "auth"]}, 1000)
    assert any("@" in c for c in cursors)  # the Apache log is not in time order


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_in_order_a_cursor_is_the_tails_next_offsets(srv: LiveServer, order: str) -> None:
    """For records in time order the cursor is per partition the next offset after the last
    hit sent (asc), or the offset of the last hit sent, below which to continue (desc)."""
    params = {"topic": ["sorted", "nginx"], "order": order}
    whole, _ = search(srv, params)
    got, cursors = pages(srv, params, 1000)
    ends = {("sorted", 0): 0, ("sorted", 1): 0, ("nginx", 0): 0}
    for (t, p), _ in list(ends.items()):
        ends[(t, p)] = sum(1 for q in whole if q[:2] == (t, p))
    sent: list[Place] = []
    for page, cursor in zip(got, cursors, strict=False):
        sent += page
        assert "@" not in cursor
        expect = {}
        for key, end in ends.items():
            mine = [o for t, p, o in sent if (t, p) == key]
            if order == "asc":
                expect[key] = max(mine) + 1 if mine else 0
            else:
                expect[key] = min(mine) if mine else end
        assert cursor == ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(expect.items()))


def _stamped(records: list[Record], start: int) -> list[Record]:
    return [
        Record(ts=start + i, line=r.line, host=r.host, source=r.source, fields=r.fields,
               level=r.level)
        for i, r in enumerate(records)
    ]  # fmt: skip


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_records_appended_between_pages(store: AnyStore, server: LiveServer, order: str) -> None:
    """Oldest first, records appended meanwhile come on the last pages; newest first, they
    never slip in. Either way no record of the first listing is lost or repeated."""
    old = RECORDS["sorted"]
    load(store, "t", old, partitions=2)  # type: ignore[arg-type]
    params = {"topic": "t", "order": order}
    first, done = search(server, {**params, "limit": 2500})
    new = _stamped(RECORDS["auth"][:3000], old[-1].ts + 1)
    for i in range(0, len(new), 400):
        chunk = new[i : i + 400]
        for p in (0, 1):  # the records go where their host's partition is
            mine = [r for r in chunk if partition_for(r.host, 2) == p]
            if mine:
                store.append("t", p, wb.build(mine))  # type: ignore[union-attr]
    rest, _ = pages(server, {**params, "from": done["cursor"]}, 1000)
    seen = first + [x for page in rest for x in page]
    assert len(seen) == len(set(seen))
    assert len(seen) == len(old) + (len(new) if order == "asc" else 0)
    if order == "asc":
        assert seen[-len(new) :] == search(server, {**params, "since": old[-1].ts + 1})[0]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"from": "web:0:5", "before": 2}, 400, "exclude each other"),
        ({"from": "web:0:5", "after": 0}, 400, "exclude each other"),
        ({"from": "web:0:5", "count": 1}, 400, "count=1 and files=1 take none"),
        ({"from": "web:0:x"}, 400, "expected topic:partition:offset"),
        ({"from": "web:0"}, 400, "expected topic:partition:offset"),
        ({"from": "@5:web:0"}, 400, "expected @ts:topic:partition:offset"),
        ({"from": "@5:auth:0:1"}, 400, "topic 'auth' is not searched"),
        ({"from": "auth:0:5"}, 400, "topic 'auth' is not searched"),
        ({"from": "web:3:5"}, 400, "partitions 0..2, not 3"),
        ({"from": "web:0:4000"}, 416, "past the end of web:0"),
    ],
)
def test_bad_cursors(srv: LiveServer, params: dict[str, Any], status: int, words: str) -> None:
    got, body = request(srv.url, "GET", "/v1/search", flat({"topic": "web", **params}))
    assert got == status, body
    assert words in body["error"]


def test_the_short_form_for_one_topic(srv: LiveServer) -> None:
    whole, _ = search(srv, {"topic": "web"})
    long, _ = search(srv, {"topic": "web", "from": "web:0:3000,web:1:3000,web:2:3000"})
    short, _ = search(srv, {"topic": "web", "from": "0:3000,1:3000,2:3000"})
    assert long == short == [x for x in whole if x[2] >= 3000]
