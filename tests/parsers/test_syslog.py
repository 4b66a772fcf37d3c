"""The syslog parser against peer vectors and real files.

Vectors: ``../shared/data/vectors/syslog.jsonl``, taken as they are from influxdata/go-syslog
@ 875f5bc5 (``rfc5424/machine_test.go``, ``rfc3164/machine_test.go``, MIT), elastic/beats @
02078190 (``libbeat/reader/syslog/rfc3164_test.go``, Apache-2.0) and vectordotdev/vrl @
eae43fef (``src/stdlib/parse_syslog.rs``, MPL-2.0). Real log: ``logs/auth.log`` from
elastic/examples @ 6d86454e (Apache-2.0).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers import Parsed, get_parser
from parsers.syslog import SyslogParser, _Invalid
from tests.parsers._vectors import LOGS_DIR, params

# A fixed clock for year inference: 2024-06-15 12:00:00 UTC.
NOW_NS = int(datetime(2024, 6, 15, 12, tzinfo=UTC).timestamp()) * 10**9

# VRL reports facility and severity by name; go-syslog and Beats by number.
FACILITIES = (
    *("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron"),
    *("authpriv", "ftp", "ntp", "security", "console", "solaris-cron"),
    *(f"local{i}" for i in range(8)),
)
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
LEVEL_OF_SEVERITY = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")


def _text(value: Any) -> str:
    """Vector text; invalid UTF-8 kept visible as lone surrogates (see compliant_msg)."""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"]).decode("utf-8", "surrogateescape")
    assert isinstance(value, str)
    return value


def _parser(case: dict[str, Any], mode: str) -> SyslogParser:
    options = case.get("parser_options") or {}
    unknown = set(options) - {"compliant_msg", "note"}
    assert not unknown, f"vector option not mapped: {unknown}"
    return SyslogParser(
        mode=mode,
        now_ns=lambda: NOW_NS,
        compliant_msg=bool(options.get("compliant_msg", False)),
    )


def _expected_fields(case: dict[str, Any]) -> dict[str, Any]:
    """The case's expectation in our field names and types (timestamp removed)."""
    out: dict[str, Any] = {}
    for key, value in case["expected"].items():
        if key == "timestamp" or value is None:
            continue
        if key == "facility" and isinstance(value, str):
            out[key] = FACILITIES.index(value)
        elif key == "severity" and isinstance(value, str):
            out[key] = SEVERITIES.index(value)
        elif key == "procid":
            out[key] = str(value)
        elif key == "message":
            out[key] = _text(value)
        else:
            out[key] = value
    return out


def _check_timestamp(expected: Any, got: Parsed) -> None:
    if expected is None:
        assert got.ts is None
        return
    assert got.ts is not None
    if isinstance(expected, str):
        # Independent reference: the standard library (fraction <= 6 digits in these vectors).
        want = datetime.fromisoformat(expected)
        delta = want - datetime(1970, 1, 1, tzinfo=UTC)
        assert got.ts == (delta // timedelta(microseconds=1)) * 1000
        return
    # RFC 3164: no year and no zone in the text; we read it as UTC (the parser's default).
    seen = datetime.fromtimestamp(got.ts / 1e9, UTC)
    mon, day, hms = expected["value"].split()
    assert (seen.strftime("%b"), seen.day, seen.strftime("%H:%M:%S")) == (mon, int(day), hms)
    # The inferred year puts it within (now - 11 months, now + 1 month].
    assert NOW_NS - 335 * 86400 * 10**9 < got.ts <= NOW_NS + 31 * 86400 * 10**9


def _check(case: dict[str, Any], got: Parsed) -> None:
    if not case["valid"]:
        assert got.error is not None, f"accepted an invalid line: {got.fields}"
        assert got.fields == {}
        assert got.ts is None
        return
    assert got.error is None, got.error
    want = _expected_fields(case)
    source = case["source"]["repo"]
    if source == "vectordotdev/vrl":
        # VRL does not report the priority; everything it reports must match.
        assert {k: got.fields.get(k) for k in want} == want
    else:
        assert got.fields == want
    _check_timestamp(case["expected"].get("timestamp"), got)
    if "severity" in want:
        assert got.level == LEVEL_OF_SEVERITY[want["severity"]]
    else:
        assert got.level is None


def _mode(case: dict[str, Any]) -> str:
    return {"rfc5424": "rfc5424", "rfc3164": "rfc3164"}.get(case["format"], "auto")


@pytest.mark.parametrize("case", params("syslog"))
def test_vector(case: dict[str, Any]) -> None:
    """Each case, parsed in the mode of its format."""
    _check(case, _parser(case, _mode(case)).parse(_text(case["input"])))


@pytest.mark.parametrize("case", params("syslog"))
def test_vector_auto(case: dict[str, Any]) -> None:
    """Each case again with mode="auto": detection must not change the outcome."""
    _check(case, _parser(case, "auto").parse(_text(case["input"])))


def test_auth_log_parses() -> None:
    """Every line of a real auth.log (no PRI) gets host, app, message and a timestamp."""
    parser = get_parser("syslog", now_ns=lambda: NOW_NS)
    lines = (LOGS_DIR / "auth.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7121
    good = 0
    for line in lines:
        got = parser.parse(line)
        if got.error is None and {"hostname", "appname", "message"} <= got.fields.keys():
            assert got.ts is not None
            good += 1
    assert good / len(lines) >= 0.99
    first = parser.parse(lines[0])
    assert first.fields == {
        "hostname": "ip-10-77-20-248",
        "appname": "sshd",
        "procid": "1291",
        "message": "Server listening on 0.0.0.0 port 22.",
    }
    # "Mar 27 13:06:56", read on 2024-06-15: this year's March.
    assert first.ts == int(datetime(2024, 3, 27, 13, 6, 56, tzinfo=UTC).timestamp()) * 10**9


def test_rfc5424_nanoseconds_and_offset() -> None:
    got = SyslogParser().parse("<34>1 2003-10-11T22:14:15.003Z host app - - - msg")
    assert got.ts == 1065910455_003_000_000
    got = SyslogParser().parse("<34>1 2003-10-11T22:14:15.000001-07:00 host app - - - msg")
    assert got.ts == (1065910455 + 7 * 3600) * 10**9 + 1000


def test_rfc5424_structured_data_nested() -> None:
    got = SyslogParser(mode="rfc5424").parse(
        '<165>1 2003-10-11T22:14:15.003Z h e - ID47 [a@1 x="1" y="\\]"][b z=""] \ufeffhi'
    )
    assert got.fields["structured_data"] == {"a@1": {"x": "1", "y": "]"}, "b": {"z": ""}}
    assert got.fields["message"] == "\ufeffhi"
    assert got.level == "info"


def test_rfc3164_zone_and_year_rollover() -> None:
    """A December line read on January 2nd is last year's; the zone applies to it."""
    jan2 = int(datetime(2025, 1, 2, tzinfo=UTC).timestamp()) * 10**9
    berlin = ZoneInfo("Europe/Berlin")
    parser = SyslogParser(tz="Europe/Berlin", now_ns=lambda: jan2)
    got = parser.parse("<13>Dec 31 23:59:59 host app: bye")
    assert got.ts == int(datetime(2024, 12, 31, 23, 59, 59, tzinfo=berlin).timestamp()) * 10**9
    got = parser.parse("Jan  1 00:00:01.5 host app[7]: hi")
    assert got.ts == int(datetime(2025, 1, 1, 0, 0, 1, tzinfo=berlin).timestamp()) * 10**9 + (
        5 * 10**8
    )
    assert got.fields["procid"] == "7"


def test_rfc3164_rfc3339_timestamp_without_zone_uses_tz() -> None:
    parser = SyslogParser(tz=timezone(timedelta(hours=2)))
    got = parser.parse("<13>2024-05-01T10:00:00 host app: x")
    assert got.ts == int(datetime(2024, 5, 1, 8, tzinfo=UTC).timestamp()) * 10**9


def test_error_says_where() -> None:
    got = SyslogParser(mode="rfc5424").parse("<1>1 - - - - - X")
    assert got.error is not None
    assert "structured data" in got.error
    assert "column 15" in got.error


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="mode"):
        SyslogParser(mode="rfc9999")
    with pytest.raises(ValueError, match="time zone"):
        SyslogParser(tz="Mars/Olympus")


_PIECES_3164 = st.sampled_from(
    [
        "<13>",
        "<192>",
        "Oct 11 22:14:15",
        "Feb 30 00:00:00",
        "Jan  1 00:00:00.5",
        " ",
        "  ",
        "host",
        "fe80::1",
        "h:",
        "app",
        "app[12]",
        "[",
        "]",
        ":",
        ": ",
        "msg",
        "\t",
        "\n",
        "é",
    ]
)


@given(st.lists(_PIECES_3164, max_size=12).map("".join))
def test_rfc3164_fast_path_equals_general_path(line: str) -> None:
    """Where the one-regex fast path answers, the general path gives the same answer."""
    parser = SyslogParser(mode="rfc3164", now_ns=lambda: NOW_NS)

    def outcome(fn: Any) -> Any:
        try:
            return fn(line)
        except _Invalid as exc:
            return (exc.what, exc.col)

    assert outcome(parser._parse_3164) == outcome(parser._parse_3164_general)
