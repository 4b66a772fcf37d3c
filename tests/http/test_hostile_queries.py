"""Requests written to hurt: digits that are not ASCII, regular expressions that cost seconds to
compile or fill memory, where-expressions made of hundreds of them. Each gets a 400 naming the
problem, and none leaves anything behind."""

from __future__ import annotations

from typing import Any

import pytest
import re2

from collector.filters import match
from tests.harness import LiveServer
from tests.http.live import ndjson, request
from wharf import batch as wb
from wharf.record import Record


def _fill(srv: LiveServer) -> None:
    records = [Record(ts=10**18 + i, line=f"line {i} ünïcode", host="h") for i in range(20)]
    srv.store.append("app", 0, wb.build(records))


def _count(rows: list[Any]) -> int:
    assert rows[-1]["done"] is True, rows[-1]
    return sum(r["count"] for r in rows[:-1])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/topics/app/partitions/%C2%B2/records", []),  # superscript two
        ("/v1/topics/app/partitions/%E2%91%A0/records", []),  # circled one
        ("/v1/topics/app/partitions/%D9%A7/offset", [("ts", "0")]),  # Arabic-Indic seven
        ("/v1/tail", [("topic", "app"), ("from", "app:\u00b2:0")]),
        ("/v1/tail", [("topic", "app"), ("from", "app:0:\u0667")]),
    ],
)
def test_digits_that_are_not_ascii_are_a_bad_request(
    server: LiveServer, path: str, params: list[tuple[str, str]]
) -> None:
    server.store.create_topic("app")
    _fill(server)
    status, body = request(server.url, "GET", path, params)
    assert status == 400, body
    assert isinstance(body, dict) and body["code"] == "invalid_argument", body


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([("q", r"\pL{1000}")], "too costly"),
        ([("q", r"(?i)\pL{600}x")], "too costly"),
        ([("where", r"a~'\pL{1000}'")], "too costly"),
        # Each alone is allowed; 256 of them (the 5 KB request that froze a collector) are not.
        ([("where", " or ".join(f"a~'{i}\\pL{{40}}'" for i in range(60)))], "together"),
    ],
)
def test_costly_regular_expressions_are_refused(
    server: LiveServer, params: list[tuple[str, str]], fragment: str
) -> None:
    server.store.create_topic("app")
    status, body = request(server.url, "GET", "/v1/search", [("topic", "app"), *params])
    assert status == 400, body
    assert fragment in body["error"], body
    # the tail takes the same filters
    status, body = request(server.url, "GET", "/v1/tail", [("topic", "app"), *params])
    assert status == 400, body
    assert fragment in body["error"], body


def test_a_regular_expression_within_the_budget_still_runs(server: LiveServer) -> None:
    server.store.create_topic("app")
    _fill(server)
    rows = ndjson(server.url, "/v1/search", [("topic", "app"), ("q", r"\pL{7}"), ("count", "1")])
    assert _count(rows) == 20  # "ünïcode"
    where = " or ".join(["host~'\\pL{20}'"] * 3)  # ~3 x 24,000 instructions, under the total
    rows = ndjson(server.url, "/v1/search", [("topic", "app"), ("where", where), ("count", "1")])
    assert _count(rows) == 0  # host "h" is one letter


def test_distinct_patterns_do_not_pile_up_compiled(server: LiveServer) -> None:
    """google-re2 keeps the last 128 compiled patterns in its own cache, each with a DFA of up
    to 64 MiB: 150 distinct searches took a collector from 68 MB to 1.28 GB. Ours keeps a few."""
    server.store.create_topic("app")
    _fill(server)
    for i in range(40):
        ndjson(server.url, "/v1/search", [("topic", "app"), ("q", f"line {i}\\b"), ("count", 1)])
        ndjson(server.url, "/v1/search", [("topic", "app"), ("where", f"line~'{i}$'")])
    assert re2._Regexp._make.cache_info().currsize == 0
    assert match._compile_cached.cache_info().currsize <= match._CACHE_SIZE < 40
