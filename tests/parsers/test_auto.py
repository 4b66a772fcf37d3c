"""Auto-detection: each kind of line goes to its parser, and real logs parse whole.

Real logs: ``../shared/data/logs/`` from elastic/examples @ 6d86454e (Apache-2.0): auth.log,
apache_combined.log, kafka_controller.log, kafka_state_change.log, nginxplus_status.jsonl.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parsers import Parsed, get_parser
from parsers.auto import AutoParser
from tests.parsers._vectors import LOGS_DIR

NOW_NS = int(datetime(2024, 6, 15, tzinfo=UTC).timestamp()) * 10**9


def at(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9


@pytest.fixture
def auto() -> AutoParser:
    return AutoParser(now_ns=lambda: NOW_NS)


def test_json(auto: AutoParser) -> None:
    got = auto.parse('{"level":"error","ts":1704164645}')
    assert got.fields == {"level": "error", "ts": 1704164645}
    assert (got.ts, got.level) == (1704164645 * 10**9, "error")


def test_syslog_5424_and_3164(auto: AutoParser) -> None:
    got = auto.parse("<11>1 2024-01-02T03:04:05Z host app 12 - - boom")
    assert got.fields["appname"] == "app"
    assert (got.ts, got.level) == (at(2024, 1, 2, 3, 4, 5), "error")
    got = auto.parse("Mar 27 13:06:56 ip-10-77-20-248 sshd[1291]: Server listening")
    assert got.fields["procid"] == "1291"
    assert got.ts == at(2024, 3, 27, 13, 6, 56)


def test_clf(auto: AutoParser) -> None:
    pytest.importorskip("parsers.clf", reason="the CLF parser is another module's job")
    got = auto.parse('1.2.3.4 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326')
    assert got.error is None
    assert got.fields["status"] == 200
    assert got.ts == at(2000, 10, 10, 20, 55, 36)


def test_timestamped_text(auto: AutoParser) -> None:
    got = auto.parse("[2016-12-19 18:01:53,612] TRACE [Controller 0]: checking (kafka.X)")
    assert got.fields == {"message": "[Controller 0]: checking (kafka.X)"}
    assert (got.ts, got.level) == (at(2016, 12, 19, 18, 1, 53) + 612_000_000, "trace")
    got = auto.parse("2024-01-02T03:04:05.5Z level=warn msg=hi")
    assert got.fields == {"level": "warn", "msg": "hi"}
    assert (got.ts, got.level) == (at(2024, 1, 2, 3, 4, 5) + 500_000_000, "warn")


def test_go_log_prefix_and_trailing_pairs(auto: AutoParser) -> None:
    got = auto.parse("2024/01/02 03:04:05 level=info msg=hi")
    assert got.fields == {"level": "info", "msg": "hi"}
    assert got.ts == at(2024, 1, 2, 3, 4, 5)
    got = auto.parse('WARN GET /x done user=bob note="a b"')
    assert got.fields == {"message": "WARN GET /x done", "user": "bob", "note": "a b"}
    assert got.level == "warn"
    # One pair in prose is not logfmt.
    assert auto.parse("Failed password for x=1") == Parsed()


def test_logfmt(auto: AutoParser) -> None:
    got = auto.parse('level=info msg="hello world" ts=2024-01-02T03:04:05Z')
    assert got.fields == {"level": "info", "msg": "hello world", "ts": "2024-01-02T03:04:05Z"}
    assert (got.ts, got.level) == (at(2024, 1, 2, 3, 4, 5), "info")


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("\tat kafka.Kafka.main(Kafka.scala)", None),
        ("java.io.IOException: Connection to 1 was disconnected", None),
        ("ERROR something broke", "error"),
        ("{not json", None),
        ("<not syslog", None),
        ("Mar is a month name but this is no syslog", None),
        ("key=value=broken", None),
        ("", None),
    ],
)
def test_everything_else_is_raw(auto: AutoParser, line: str, level: str | None) -> None:
    assert auto.parse(line) == Parsed(level=level)


LOG_FILES = sorted(p.name for p in LOGS_DIR.iterdir() if p.suffix in {".log", ".jsonl"})


@pytest.mark.parametrize("name", LOG_FILES)
def test_real_logs(name: str) -> None:
    """Every line of every log parses; lines that carry structure yield fields (>= 99%)."""
    auto = get_parser("auto", now_ns=lambda: NOW_NS)
    lines = (LOGS_DIR / name).read_bytes().decode("utf-8", "replace").splitlines()
    results = [auto.parse(line) for line in lines]
    assert all(r.error is None for r in results)
    with_fields = [r for r in results if r.fields]
    assert all(r.ts is not None for r in with_fields)
    if name.startswith("kafka_"):
        # Stack-trace lines carry nothing to parse (multiline grouping joins them to their
        # event); every line that starts with a timestamp yields ts, level and message.
        stamped = [r for line, r in zip(lines, results, strict=True) if line.startswith("[20")]
        assert stamped
        assert all(r.fields and r.level is not None for r in stamped)
        assert len(with_fields) == len(stamped)
    elif name == "apache_combined.log":
        pytest.importorskip("parsers.clf", reason="the CLF parser is another module's job")
        assert len(with_fields) / len(lines) >= 0.99
    else:
        assert len(with_fields) / len(lines) >= 0.99
