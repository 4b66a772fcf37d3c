"""``wharf grep``, ``wharf tail --no-follow`` and ``wharf replay`` print the same bytes for the
same records in every format: one renderer each (``cli.render``), against a real collector
process holding records with nested fields, a field named like a record attribute, booleans,
lists, nulls, quotes, control characters, non-ASCII text and nanosecond timestamps."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.harness import CollectorProcess

LINES = [
    json.dumps({"time": "2024-05-01T12:00:00.123456789Z", "level": "error", "msg": 'boom "x"',
                "http": {"method": "GET", "status": 500, "req": {"path": "/a b"}},
                "host": "peer-1", "ok": True, "tags": ["a", "b"], "n": None,
                "user": "zoë smith", "ctl": "a\u0001b", "empty": "", "bad key": 1}),
    json.dumps({"time": "2024-05-01T12:00:00.123456790Z", "level": "info", "msg": "next",
                "offset": 7, "ts": "not mine", "line": "neither"}),
    "level=warn msg=\"plain logfmt\" took=1.5s",
    "a line no parser takes\twith a tab = and \\ backslash",
]  # fmt: skip
FORMATS = ["logfmt", "json", "raw", "text", "{ts} {host} {http.method} {fields.host} {line}"]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    c = CollectorProcess(tmp_path_factory.mktemp("same") / "data").start()
    try:
        c.ship("mixed", "auto", "-", stdin="".join(f"{x}\n" for x in LINES))
        yield c
    finally:
        assert c.stop() == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_grep_tail_and_replay_print_identical_lines(collector: CollectorProcess, fmt: str) -> None:
    grep = collector.wharf_bytes("grep", "-t", "mixed", "-o", fmt, "")
    tail = collector.wharf_bytes("tail", "-t", "mixed", "-n", "100", "--no-follow", "-o", fmt)
    replay = collector.wharf_bytes("replay", "-t", "mixed", "-q", "-o", fmt)
    for done in (grep, tail, replay):
        assert done.returncode == 0, done.stderr
    assert grep.stdout.count(b"\n") == len(LINES)
    assert grep.stdout == tail.stdout == replay.stdout


def test_the_logfmt_they_share(collector: CollectorProcess) -> None:
    first, second, *_ = collector.wharf(
        "grep", "-t", "mixed", "-o", "logfmt", ""
    ).stdout.splitlines()
    assert first.startswith("ts=2024-05-01T12:00:00.123456789Z topic=mixed partition=0 offset=0 ")
    for pair in (
        "level=error", 'msg="boom \\"x\\""', "http.method=GET", "http.status=500",
        'http.req.path="/a b"', "fields.host=peer-1", "ok=true", 'tags="[\\"a\\",\\"b\\"]"',
        'n=""', 'user="zoë smith"', 'ctl="a\\u0001b"', 'empty=""', "bad_key=1",
    ):  # fmt: skip
        assert f" {pair} " in first, pair
    assert second.startswith("ts=2024-05-01T12:00:00.123456790Z ")
    assert " fields.offset=7 " in second and ' fields.ts="not mine" ' in second
    assert " fields.line=neither " in second
