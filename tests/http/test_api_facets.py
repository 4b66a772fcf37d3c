"""``GET /v1/facets``: exact top values over the whole match set, each value's count equal to
what ``/v1/search?count=1&where=FIELD="VALUE"`` counts and to the CLI's ``wharf grep -c``, on
real logs (``tests.http.console_data``), on both backends."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from cli.http_client import Client
from collector.query import facets as engine
from tests.harness import WHARF, LiveServer, clean_env
from tests.http.conftest import BACKENDS
from tests.http.console_data import console_records, count, flat, serve_console_data
from tests.http.live import request
from wharf.api import FacetsRequest

RECORDS = console_records()


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    yield from serve_console_data(request, tmp_path_factory)


def facets(srv: LiveServer, **params: Any) -> dict[str, Any]:
    status, body = request(srv.url, "GET", "/v1/facets", flat(params))
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


CASES = [
    ({"topic": "web"}, "host"),
    ({"topic": "web", "q": "Googlebot"}, "status"),
    ({"topic": "web", "where": "status>=300"}, "fields.status"),
    ({"topic": "web", "host": "web-1"}, "method"),
    ({"topic": "web", "q": "kibana"}, "fields.host"),
    ({"topic": ["kafka", "auth"]}, "source"),
    ({"topic": "kafka"}, "level"),
    ({"topic": "kafka", "level": "trace+", "q": "Controller"}, "level"),
    ({"topic": "auth"}, "appname"),
    ({"topic": "nginx"}, "connections.active"),
    ({"topic": "nginx"}, "processes"),
]


@pytest.mark.parametrize(
    ("params", "field"), CASES, ids=lambda x: str(x) if isinstance(x, str) else None
)
def test_each_value_counts_what_where_counts(
    srv: LiveServer, params: dict[str, Any], field: str
) -> None:
    f = facets(srv, **params, field=field, limit=100)
    total = count(srv, params)
    assert f["field"] == field
    assert f["total"] == total == f["stats"]["matched"]
    assert not f["capped"] and f["other"] == 0
    values = f["values"]
    assert values and f["distinct"] == len(values)  # all of them fit in limit=100
    assert [v["count"] for v in values] == sorted((v["count"] for v in values), reverse=True)
    for a, b in itertools.pairwise(values):
        assert a["count"] > b["count"] or a["value"] < b["value"]
    where = params.get("where")
    for v in values:
        test = f"{field}={quoted(v['value'])}"
        expr = f"({where}) and {test}" if where else test
        assert v["count"] == count(srv, {**params, "where": expr}), v
    assert sum(v["count"] for v in values) + f["missing"] == total
    if field != "level":
        present = f'{field}~""'  # any value at all: only a missing field fails it
        expr = f"({where}) and {present}" if where else present
        assert total - f["missing"] == count(srv, {**params, "where": expr})
    elif "level" in params:
        assert f["missing"] == 0  # the level filter names no "none"
    else:
        assert f["missing"] == count(srv, {**params, "level": "none"})


def test_the_top_k_of_many(srv: LiveServer) -> None:
    f = facets(srv, topic="web", field="path", limit=5)
    expected = Counter(r.fields["path"] for r in RECORDS["web"] if "path" in r.fields)
    top = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(v["value"], v["count"]) for v in f["values"]] == top
    assert f["distinct"] == len(expected) and f["total"] == len(RECORDS["web"])
    assert f["missing"] == sum(1 for r in RECORDS["web"] if "path" not in r.fields)


def test_values_equal_the_cli_counts(srv: LiveServer) -> None:
    f = facets(srv, topic="kafka", field="level")
    for v in f["values"]:
        done = subprocess.run(
            [WHARF, "grep", "-c", "-t", "kafka", "--where", f"level={v['value']}", ""],
            capture_output=True, text=True, env=clean_env(WHARF_HTTP=srv.url), timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(v["count"]), (v, done.stdout)


def test_distinct_values_past_the_cap_count_as_other(
    srv: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "MAX_FACET_VALUES", 40)  # the server runs in this process
    f = facets(srv, topic="web", field="fields.host", limit=100)
    assert f["capped"] and f["distinct"] == 40 and len(f["values"]) == 40
    assert f["other"] > 0
    assert sum(v["count"] for v in f["values"]) + f["other"] + f["missing"] == f["total"]
    for v in f["values"][:5]:  # values met before the cap keep counting exactly
        expr = f"fields.host={quoted(v['value'])}"
        assert v["count"] == count(srv, {"topic": "web", "where": expr})


def test_json_values_are_rendered_as_where_sees_them(srv: LiveServer) -> None:
    f = facets(srv, topic="nginx", field="processes", limit=3)
    assert all(json.loads(v["value"]).keys() == {"respawned"} for v in f["values"])
    g = facets(srv, topic="nginx", field="fields.ssl.nope")
    assert g["missing"] == g["total"] == 500 and g["values"] == [] and g["distinct"] == 0


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"topic": "web"}, 400, "parameter field is required"),
        ({"topic": "web", "field": " "}, 400, "parameter field is required"),
        ({"topic": "web", "field": "line"}, 400, "field=line is not a facet"),
        ({"topic": "web", "field": "ts"}, 400, "use fields.ts"),
        ({"topic": "web", "field": "host", "limit": 0}, 400, "limit=0 must be >= 1"),
        ({"topic": "web", "field": "host", "limit": 101}, 400, "limit=101 exceeds 100"),
        ({"topic": "nope", "field": "host"}, 404, "nope"),
        ({"topic": "web", "field": "host", "where": "a=("}, 400, "invalid where"),
    ],
)
def test_bad_requests(srv: LiveServer, params: dict[str, Any], status: int, words: str) -> None:
    got, body = request(srv.url, "GET", "/v1/facets", flat(params))
    assert got == status, body
    assert words in body["error"]


def test_the_typed_client(srv: LiveServer) -> None:
    typed = Client(srv.url).facets(FacetsRequest(topics=("web",), field="status", limit=3))
    raw = facets(srv, topic="web", field="status", limit=3)
    assert msgspec.to_builtins(typed.values) == raw["values"]
    assert (typed.total, typed.distinct, typed.missing) == (raw["total"], 8, raw["missing"])
