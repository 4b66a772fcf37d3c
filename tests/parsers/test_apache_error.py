"""The Apache error log parser against VRL's vectors, and the Apache 2.2/2.4 shapes.

Vectors: ``../shared/data/vectors/clf.jsonl``, the ``parse_apache_log`` cases with
``format: "error"`` of vectordotdev/vrl @ eae43fef (``src/stdlib/parse_apache_log.rs``;
MPL-2.0).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from parsers import get_parser
from parsers.apache_error import ApacheErrorParser
from tests.parsers._vectors import params
from tests.parsers.test_clf import check_fields, expected_ns

# The time zone each VRL test passes as its ``tz`` argument where it is not UTC; the vector
# file kept the function arguments but not that test-harness setting.
# parse_apache_log.rs, test log_line_valid_with_timezone: ``tz: TimeZone::Named(Europe::Paris)``.
_VRL_TZ = {"vrl/parse_apache_log/log_line_valid_with_timezone": ZoneInfo("Europe/Paris")}

# ``log_line_valid_with_local_timestamp_format`` builds its input in Rust, formatting
# 2000-10-10T20:55:36Z in the machine's local zone; we do the same with a fixed "local" zone
# (deliberately not UTC) and tell the parser that zone.
_LOCAL = timezone(timedelta(hours=-7))


def _input(case: dict[str, Any]) -> tuple[str, tzinfo]:
    value = case["input"]
    if isinstance(value, dict):
        assert "Utc.with_ymd_and_hms(2000, 10, 10, 20, 55, 36)" in value["$rust_expr"]
        assert '.format("%a %b %d %H:%M:%S %Y")' in value["$rust_expr"]
        local = datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC).astimezone(_LOCAL)
        return f"[{local.strftime('%a %b %d %H:%M:%S %Y')}] - - - -", _LOCAL
    return value, _VRL_TZ.get(case["id"], UTC)


def _is_error_case(case: dict[str, Any]) -> bool:
    return bool(case["function"] == "parse_apache_log" and case["format"] == "error")


@pytest.mark.parametrize("case", params("clf", where=_is_error_case))
def test_vector(case: dict[str, Any]) -> None:
    options = dict(case["options"] or {})
    assert set(options) <= {"timestamp_format"}, f"vector option not mapped: {options}"
    line, tz = _input(case)
    parsed = ApacheErrorParser(tz=tz, **options).parse(line)
    if case["valid"]:
        check_fields(parsed, case["expected"])
    else:
        assert parsed.error is not None


@pytest.mark.parametrize(
    ("line", "fields", "timestamp", "level"),
    [
        # Apache 2.4 default ErrorLogFormat: microseconds, module:severity, pid:tid, AH code.
        (
            "[Thu Jun 27 06:58:09.169510 2019] [core:notice] [pid 11:tid 140084938034496] "
            "AH00094: Command line: 'httpd -D FOREGROUND'",
            {
                "module": "core",
                "severity": "notice",
                "pid": 11,
                "thread": "140084938034496",
                "message1": "AH00094: Command line: ",
                "message2": "'httpd -D FOREGROUND'",
            },
            "2019-06-27T06:58:09.16951Z",
            "info",
        ),
        (
            "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 1234:tid 5678] "
            "[client 1.2.3.4:5678] AH00126: Invalid URI in request GET /x HTTP/1.1",
            {
                "module": "core",
                "severity": "error",
                "pid": 1234,
                "thread": "5678",
                "client": "1.2.3.4",
                "port": 5678,
                "message": "AH00126: Invalid URI in request GET /x HTTP/1.1",
            },
            "2000-10-11T14:32:52.123456Z",
            "error",
        ),
        # Apache 2.2: [severity] without a module, [client ip] without a port.
        (
            "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server "
            "configuration: /export/home/live/ap/htdocs/test",
            {
                "severity": "error",
                "client": "127.0.0.1",
                "message": "client denied by server configuration: "
                "/export/home/live/ap/htdocs/test",
            },
            "2000-10-11T14:32:52Z",
            "error",
        ),
        (
            "[Sun Mar 07 16:02:00 2004] [notice] Apache/1.3.29 (Unix) configured -- resuming "
            "normal operations",
            {
                "severity": "notice",
                "message": "Apache/1.3.29 (Unix) configured -- resuming normal operations",
            },
            "2004-03-07T16:02:00Z",
            "info",
        ),
        (
            "[Wed Oct 11 14:32:52.123456 2000] [authz_core:trace3] [pid 1234] x",
            {"module": "authz_core", "severity": "trace3", "pid": 1234, "message2": "x"},
            "2000-10-11T14:32:52.123456Z",
            "trace",
        ),
    ],
)
def test_apache_shapes(line: str, fields: dict[str, Any], timestamp: str, level: str) -> None:
    parsed = ApacheErrorParser().parse(line)
    assert parsed.error is None
    assert parsed.fields == fields
    assert parsed.ts == expected_ns({"$timestamp": timestamp})
    assert parsed.level == level


def test_local_time_zone() -> None:
    line = "[Wed Oct 11 14:32:52 2000] [error] x"
    parsed = ApacheErrorParser(tz=timezone(timedelta(hours=2))).parse(line)
    assert parsed.ts == expected_ns({"$timestamp": "2000-10-11T12:32:52Z"})


def test_rejects() -> None:
    parser = ApacheErrorParser()
    assert parser.parse("hello").error is not None
    assert parser.parse("[not a time] [error] x").error is not None
    assert parser.parse("").error is not None


def test_registry() -> None:
    assert isinstance(get_parser("apache_error"), ApacheErrorParser)


def test_thread_id_case_apart_from_the_fraction() -> None:
    """The deviating VRL case (error_line_thread_id): every field matches; the time is read with
    ``%f`` as a decimal fraction, .138633 s (VRL's chrono reads 138633 ns)."""
    (case,) = [
        c.values[0]
        for c in params("clf")
        if c.values[0]["id"] == "vrl/parse_apache_log/error_line_thread_id"
    ]
    parsed = ApacheErrorParser(**case["options"]).parse(case["input"])
    expected = dict(case["expected"])
    del expected["timestamp"]
    assert parsed.fields == expected
    assert parsed.ts == expected_ns({"$timestamp": "2021-06-04T15:40:27.138633Z"})
