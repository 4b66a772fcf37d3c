"""``GET /v1/histogram``: exact counts per bucket and level, checked bucket by bucket against
``/v1/search?count=1`` over the bucket's own time range, on real logs spanning many batches,
partitions and topics (``tests.http.console_data``), on both backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from cli.http_client import Client
from tests.harness import LiveServer
from tests.http.conftest import BACKENDS
from tests.http.console_data import console_records, count, flat, serve_console_data
from tests.http.live import request
from wharf.api import HistogramRequest

LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "none"]
S = 10**9
WEB_FROM = 1431856800 * S  # 2015-05-17T10:00Z, the Apache log's first hour (UTC)
RECORDS = console_records()


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from serve_console_data(request, tmp_path_factory)


def histogram(srv: LiveServer, **params: Any) -> dict[str, Any]:
    status, body = request(srv.url, "GET", "/v1/histogram", flat(params))
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def check_exact(srv: LiveServer, params: dict[str, Any], h: dict[str, Any]) -> None:
    """Every bucket present, aligned, and equal to a count over its own range; levels and the
    total equal counts over the whole range."""
    step, since, until = h["step"], h["since"], h["until"]
    assert h["levels"] == LEVELS
    buckets = h["buckets"]
    assert buckets, h
    assert buckets[0]["ts"] == since - since % step
    assert [b["ts"] for b in buckets] == [buckets[0]["ts"] + i * step for i in range(len(buckets))]
    assert buckets[-1]["ts"] < until <= buckets[-1]["ts"] + step
    for b in buckets:
        lo, hi = max(b["ts"], since), min(b["ts"] + step, until)
        assert sum(b["counts"]) == count(srv, {**params, "since": lo, "until": hi}), b
    whole = {**params, "since": since, "until": until}
    assert h["total"] == sum(sum(b["counts"]) for b in buckets) == count(srv, whole)
    assert h["stats"]["matched"] == h["total"]
    for i, level in enumerate(LEVELS):
        per_level = sum(b["counts"][i] for b in buckets)
        if "level" not in params:  # a level filter and level= do not combine into one count
            assert per_level == count(srv, {**whole, "level": level}), level


CASES = [
    {"topic": "web"},
    {"topic": "web", "q": "Googlebot"},
    {"topic": "web", "q": "GET", "invert": 1},
    {"topic": "web", "q": "MOZILLA/5.0 (X11", "fixed": 1, "icase": 1},
    {"topic": "web", "host": "web-2"},
    {"topic": "web", "where": "status>=400"},
    {"topic": "sorted"},
    {"topic": "sorted", "q": "GET /presentations"},
    {"topic": "sorted", "host": "web-[12]"},
    {"topic": "kafka"},
    {"topic": "kafka", "level": "warn+"},
    {"topic": "kafka", "level": ["none", "trace"]},
    {"topic": "kafka", "q": "Controller", "source": "*controller*"},
    {"topic": "kafka", "where": "message~offsets", "level": "trace"},
    {"topic": ["kafka", "auth", "nginx"]},
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_every_bucket_equals_a_count_over_its_range(
    srv: LiveServer, params: dict[str, Any]
) -> None:
    topics = params["topic"] if isinstance(params["topic"], list) else [params["topic"]]
    last = max(r.ts for t in topics for r in RECORDS[t])
    h = histogram(srv, **params, until=last + 1)  # the data is old: until=now is years away
    check_exact(srv, params, h)
    assert len(h["buckets"]) <= 100


def test_a_window_of_several_topics_cuts_through_batches(srv: LiveServer) -> None:
    params = {"topic": ["web", "sorted", "auth", "kafka"], "q": "e"}
    h = histogram(srv, **params, since=WEB_FROM + 1234, until=WEB_FROM + 7 * 3600 * S, buckets=30)
    assert h["step"] == 15 * 60 * S  # 7 h in at most 30 buckets: 15 minutes
    assert len(h["buckets"]) == 28  # 10:00 to 17:00 in quarters, the first cut by since
    assert h["total"] > 0
    check_exact(srv, params, h)


@pytest.mark.parametrize(
    ("span", "buckets", "step"),
    [
        (3600 * S, 100, 60 * S),
        (24 * 3600 * S, 100, 15 * 60 * S),
        (24 * 3600 * S, 1000, 2 * 60 * S),
        (90 * S, 100, S),
        (30 * 24 * 3600 * S, 100, 12 * 3600 * S),
        (3 * 365 * 24 * 3600 * S, 100, 14 * 24 * 3600 * S),
    ],
)
def test_the_step_is_the_smallest_nice_width_that_fits(
    srv: LiveServer, span: int, buckets: int, step: int
) -> None:
    h = histogram(srv, topic="web", since=WEB_FROM, until=WEB_FROM + span, buckets=buckets)
    assert h["step"] == step
    assert len(h["buckets"]) <= buckets
    assert all(b["ts"] % step == 0 for b in h["buckets"])


@pytest.mark.parametrize("topic", ["web", "sorted"])
def test_zooming_in_keeps_the_bucket_edges(srv: LiveServer, topic: str) -> None:
    wide = histogram(srv, topic=topic, since=WEB_FROM, until=WEB_FROM + 24 * 3600 * S)
    lo, hi = WEB_FROM + 3 * 3600 * S + 17 * S, WEB_FROM + 9 * 3600 * S
    narrow = histogram(srv, topic=topic, since=lo, until=hi, step=wide["step"])
    by_ts = {b["ts"]: b["counts"] for b in wide["buckets"]}
    inner = narrow["buckets"][1:]  # the first is cut by since
    assert inner and all(by_ts[b["ts"]] == b["counts"] for b in inner)


def test_an_explicit_step(srv: LiveServer) -> None:
    params = {"topic": "web", "since": WEB_FROM, "until": WEB_FROM + 6 * 3600 * S}
    h = histogram(srv, **params, step=7 * 60 * S)
    assert h["step"] == 7 * 60 * S
    assert len(h["buckets"]) == 53  # 360 / 7, the edges at multiples of 7 minutes: 53
    check_exact(srv, {"topic": "web"}, h)
    status, body = request(srv.url, "GET", "/v1/histogram", flat({**params, "step": 60 * S,
                                                                   "buckets": 100}))  # fmt: skip
    assert status == 400
    assert "gives 360 buckets" in body["error"] and body["code"] == "invalid_argument"


def test_defaults_earliest_record_to_now(srv: LiveServer) -> None:
    before = time.time_ns()
    h = histogram(srv, topic=["nginx", "auth"])
    after = time.time_ns()
    records = RECORDS
    assert h["since"] == min(r.ts for t in ("nginx", "auth") for r in records[t])
    assert before <= h["until"] <= after
    assert h["total"] == len(records["nginx"]) + len(records["auth"])
    assert len(h["buckets"]) <= 100


def test_runs_as_a_search(srv: LiveServer) -> None:
    done = srv.metric("wharf_http_searches_total", {"outcome": "completed"})
    histogram(srv, topic="auth")
    assert srv.metric("wharf_http_searches_total", {"outcome": "completed"}) == done + 1


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"topic": "web", "buckets": 0}, 400, "buckets=0 must be >= 1"),
        ({"topic": "web", "buckets": 1001}, 400, "buckets=1001 exceeds 1000"),
        ({"topic": "web", "step": 0}, 400, "step=0 must be >= 1"),
        ({"topic": "web", "step": "1m"}, 400, "step='1m' is not an integer"),
        ({"topic": "web", "bucket": 5}, 400, "unknown parameter 'bucket'"),
        ({"topic": "nope"}, 404, "nope"),
        ({"topic": "web", "where": "status>"}, 400, "invalid where expression"),
        ({"topic": "web", "q": "("}, 400, "invalid regular expression"),
        ({"topic": "web", "since": 5, "until": 5}, 400, "empty time range"),
        ({"topic": "web", "since": 4 * 10**18}, 400, "is not before until"),
    ],
)
def test_bad_requests(srv: LiveServer, params: dict[str, Any], status: int, words: str) -> None:
    got, body = request(srv.url, "GET", "/v1/histogram", flat(params))
    assert got == status, body
    assert words in body["error"]


@pytest.mark.parametrize("params", [{"topic": "sorted"}, {"topic": "sorted", "level": "none"}])
def test_records_on_bucket_edges_count_in_the_bucket_they_open(
    srv: LiveServer, params: dict[str, Any]
) -> None:
    lo, hi = WEB_FROM, WEB_FROM + 6 * 3600 * S
    on_edges = [r for r in RECORDS["sorted"] if lo <= r.ts < hi and r.ts % (60 * S) == 0]
    assert len(on_edges) > 10  # whole-second times: some fall on minute edges
    h = histogram(srv, **params, since=lo, until=hi, step=60 * S, buckets=360)
    assert len(h["buckets"]) == 360
    check_exact(srv, params, h)


def test_the_typed_client(srv: LiveServer) -> None:
    req = HistogramRequest(topics=("kafka",), levels=("warn+",), buckets=20)
    typed = Client(srv.url).histogram(req)
    raw = histogram(srv, **dict(req.to_params()))
    assert msgspec.to_builtins(typed.buckets) == raw["buckets"]
    assert (typed.total, typed.step, typed.since) == (raw["total"], raw["step"], raw["since"])
