"""``GET /v1/search`` modes beyond the record stream: context (``before``/``after``), ``files``,
``level`` and ``progress``, on real sample logs in a real store behind the real API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.storage import Store, TopicConfig
from tests.harness import LiveServer, grep_lines
from tests.http.live import LOGS, hits_of, log_lines, log_records, ndjson, request
from wharf import batch as wb
from wharf.record import LEVELS, Record

APACHE, AUTH = "apache_combined.log", "auth.log"


def grep_out(args: list[str], name: str) -> list[str]:
    return grep_lines(*args, "--", str(LOGS / name))


def as_grep(records: list[dict[str, Any]]) -> list[str]:
    """Context records printed the way grep prints them: ``--`` where the group changes."""
    out: list[str] = []
    for i, r in enumerate(records):
        if i and r["group"] != records[i - 1]["group"]:
            out.append("--")
        out.append(r["line"])
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Topic ``mixed``, one partition: apache_combined.log and auth.log of host ``h``, their
    lines interleaved one by one in shared batches (as one shipper sends two files), and
    the same two files of host ``g`` in a second topic ``other`` with 3 partitions."""
    web, auth = log_lines(APACHE), log_lines(AUTH)
    with Store(tmp_path_factory.mktemp("mixed") / "data") as store:
        store.create_topic("mixed", TopicConfig(partitions=1))
        recs: list[Record] = []
        for i in range(max(len(web), len(auth))):
            for name, lines in ((APACHE, web), (AUTH, auth)):
                if i < len(lines):
                    recs.append(Record(ts=10**18 + i, line=lines[i], host="h", source=name))
        for i in range(0, len(recs), 700):  # batch edges fall anywhere, groups span them
            store.append("mixed", 0, wb.build(recs[i : i + 700]))
        with LiveServer(store) as srv:
            yield srv


@pytest.mark.parametrize(
    ("pattern", "before", "after"),
    [("kibana", 2, 3), ("sshd", 1, 1), ("Invalid user", 3, 0), ('" 404 ', 0, 2), ("GET", 1, 1),
     ("no such text", 2, 2), ("Googlebot", 0, 0)],
)  # fmt: skip
def test_context_stays_within_its_source(
    mixed: LiveServer, pattern: str, before: int, after: int
) -> None:
    params = [("topic", "mixed"), ("q", pattern), ("fixed", 1)]
    got = list(hits_of(ndjson(mixed.url, "/v1/search", [*params, ("before", before),
                                                        ("after", after)])))  # fmt: skip
    for name in (APACHE, AUTH):
        mine = [r for r in got if r["source"] == name]
        assert as_grep(mine) == grep_out(["-F", "-B", str(before), "-A", str(after), pattern], name)
    groups: dict[int, set[str]] = {}
    for r in got:
        groups.setdefault(r["group"], set()).add(r["source"])
    assert all(len(s) == 1 for s in groups.values())  # a group never mixes sources
    assert [r["group"] for r in got] == sorted(r["group"] for r in got)
    matches = [r for r in got if r["match"]]
    plain = list(hits_of(ndjson(mixed.url, "/v1/search", params)))
    assert sorted(r["offset"] for r in matches) == sorted(r["offset"] for r in plain)


def test_context_with_filters_and_a_limit(mixed: LiveServer) -> None:
    got = list(hits_of(ndjson(mixed.url, "/v1/search", [
        ("topic", "mixed"), ("q", "Invalid user"), ("source", AUTH), ("before", 1), ("after", 2),
        ("limit", 4),
    ])))  # fmt: skip
    assert as_grep(got) == grep_out(["-m", "4", "-B", "1", "-A", "2", "Invalid user"], AUTH)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [([("before", "2"), ("order", "desc")], "need order=asc"),
     ([("after", "5000")], "exceeds 1000"), ([("before", "-1")], "must be >= 0"),
     ([("count", "1"), ("files", "1")], "exclude each other"),
     ([("level", "loud")], "unknown level 'loud'"), ([("level", "none+")], "unknown level")],
)  # fmt: skip
def test_bad_mode_requests(mixed: LiveServer, params: list[tuple[str, str]], fragment: str) -> None:
    status, body = request(mixed.url, "GET", "/v1/search", [("topic", "mixed"), *params])
    assert status == 400 and fragment in body["error"], body


def test_files_lists_each_source_with_its_count(loaded: LiveServer) -> None:
    apache = log_records(APACHE, "clf")
    got = ndjson(loaded.url, "/v1/search", [("q", "sshd"), ("icase", 1), ("files", 1)])
    expected: dict[tuple[str, str, str], int] = {}
    for topic, name, parser in (("auth", AUTH, "syslog"), ("web", APACHE, "clf")):
        for r in apache if topic == "web" else log_records(name, parser):
            if "sshd" in r.line.lower():
                key = (topic, r.host, r.source)
                expected[key] = expected.get(key, 0) + 1
    assert [(f["topic"], f["host"], f["source"], f["count"]) for f in got[:-1]] == [
        (*k, n) for k, n in sorted(expected.items())
    ]
    assert got[-1]["done"] and got[-1]["count"] == sum(expected.values())


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, list[Record]]]:
    """Both Kafka logs (every level but fatal, and lines without one), one per partition."""
    records: list[Record] = []
    with Store(tmp_path_factory.mktemp("kafka") / "data") as store:
        store.create_topic("kafka", TopicConfig(partitions=2))
        for p, name in enumerate(("kafka_controller.log", "kafka_state_change.log")):
            recs = log_records(name, "auto")
            records += recs
            for i in range(0, len(recs), 300):
                store.append("kafka", p, wb.build(recs[i : i + 300]))
        with LiveServer(store, progress_s=0.0) as srv:
            yield srv, records


@pytest.mark.parametrize(
    ("levels", "wanted"),
    [(["error"], {"error"}), (["warn", "error"], {"warn", "error"}), (["warn,error"], {"warn", "error"}),
     (["warn+"], {"warn", "error", "fatal"}), (["WARNING"], {"warn"}), (["debug+"], set(LEVELS) - {"trace"}),
     (["none"], {None}), (["trace", "none"], {"trace", None})],
)  # fmt: skip
def test_levels(
    kafka: tuple[LiveServer, list[Record]], levels: list[str], wanted: set[str | None]
) -> None:
    srv, records = kafka
    params = [("topic", "kafka"), *(("level", v) for v in levels)]
    got = list(hits_of(ndjson(srv.url, "/v1/search", params)))
    expected = [r.line for r in records if r.level in wanted]
    assert expected and sorted(h["line"] for h in got) == sorted(expected)
    counted = ndjson(srv.url, "/v1/search", [*params, ("count", 1)])
    assert counted[-1]["count"] == len(expected)
    both = ndjson(srv.url, "/v1/search", [*params, ("q", "Controller"), ("count", 1)])
    assert both[-1]["count"] == sum(
        1 for r in records if r.level in wanted and "Controller" in r.line
    )


def test_progress_lines(kafka: tuple[LiveServer, list[Record]]) -> None:
    """With progress=1 the scan reports as it goes (this server: before every batch), even
    when nothing matches; the totals are the bytes the time range can touch."""
    srv, _ = kafka
    for mode in ([], [("count", 1)], [("files", 1)], [("before", 1)]):
        got = ndjson(srv.url, "/v1/search", [("topic", "kafka"), ("q", "nothing like this"),
                                             ("progress", 1), *mode])  # fmt: skip
        progress = [x["progress"] for x in got if "progress" in x]
        done = got[-1]
        assert done["done"] and len(progress) >= 2, mode
        total = sum(
            p["bytes"] for p in request(srv.url, "GET", "/v1/topics/kafka")[1]["partitions"]
        )
        assert {p["bytes_total"] for p in progress} == {total}
        reads = [p["bytes_read"] for p in progress]
        assert reads == sorted(reads) and reads[-1] <= done["stats"]["bytes_read"] == total
    quiet = ndjson(srv.url, "/v1/search", [("topic", "kafka"), ("q", "nothing like this")])
    assert not [x for x in quiet if "progress" in x]


def test_compression_figures_are_exact(tmp_path: Path) -> None:
    lines = log_lines(APACHE)
    with Store(tmp_path / "data") as store:
        store.create_topic("web", TopicConfig(partitions=1))
        for i in range(0, len(lines), 1000):
            store.append("web", 0, wb.build([Record(ts=j, line=x) for j, x in
                                             enumerate(lines[i : i + 1000])]))  # fmt: skip
        with LiveServer(store) as srv:
            _, info = request(srv.url, "GET", "/v1/topics/web")
    raw = (LOGS / APACHE).stat().st_size
    assert info["line_bytes"] == raw == info["partitions"][0]["line_bytes"]  # the file's size
    assert info["records"] == len(lines)
    assert info["compression_ratio"] == round(raw / info["bytes"], 3) > 3
