"""Timestamp parsing, checked against the standard library as an independent oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers import timestamps as T
from parsers.timestamps import (
    compile_format,
    parse_any,
    parse_clf,
    parse_epoch,
    parse_log4j,
    parse_rfc3339,
    parse_syslog3164,
    ts_from_fields,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = 10**9


def ns_of(dt: datetime, extra_ns: int = 0) -> int:
    """Exact nanoseconds of an aware datetime (integer arithmetic, no float)."""
    return (dt - EPOCH) // timedelta(microseconds=1) * 1000 + extra_ns


def at(*args: int, tz: timezone | ZoneInfo = UTC) -> int:
    return ns_of(datetime(*args, tzinfo=tz))


# --- RFC 3339 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2003-10-11T22:14:15.123456789Z", at(2003, 10, 11, 22, 14, 15) + 123456789),
        ("2003-10-11t22:14:15z", at(2003, 10, 11, 22, 14, 15)),
        ("2003-10-11 22:14:15.5+02:00", at(2003, 10, 11, 20, 14, 15) + 500_000_000),
        ("2003-10-11T22:14:15-0700", at(2003, 10, 12, 5, 14, 15)),
        ("2003-10-11T22:14:15,25Z", at(2003, 10, 11, 22, 14, 15) + 250_000_000),
        ("2003-10-11T22:14:15.1234567891234Z", at(2003, 10, 11, 22, 14, 15) + 123456789),
        ("2016-12-31T23:59:60Z", at(2017, 1, 1)),  # leap second: next minute's first second
        ("2024-02-29T00:00:00Z", at(2024, 2, 29)),
        ("1969-12-31T23:59:59.999999999Z", -1),
    ],
)
def test_rfc3339_valid(text: str, expected: int) -> None:
    assert parse_rfc3339(text) == expected
    assert parse_rfc3339(text) == expected  # second time through the fast path
    assert T._parse_rfc3339_general(text, UTC) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2003-10-11",
        "2003-10-11T22:14Z",
        "2003-02-29T00:00:00Z",  # not a leap year
        "2003-13-01T00:00:00Z",
        "2003-04-31T00:00:00Z",
        "2003-10-11T24:00:00Z",
        "2003-10-11T22:60:00Z",
        "2003-10-11T22:14:61Z",
        "2003-10-11T22:14:15+24:00",
        "2003-10-11T22:14:15+05:60",
        "2003-10-11T22:14:15.Z",
        "2003-10-11T22:14:15 Z",
        "2003-10-11T22:14:15Zjunk",
        " 2003-10-11T22:14:15Z",
        "２００３-10-11T22:14:15Z",  # noqa: RUF001 - full-width digits are not digits here
        "2003-10-11T22:14:15.１Z",  # noqa: RUF001
        "2003-10-11T22:14:15.²Z",
    ],
)
def test_rfc3339_invalid(text: str) -> None:
    parse_rfc3339("2003-10-11T22:14:15Z")  # warm the fast path's cache for this second
    assert parse_rfc3339(text) is None


def test_rfc3339_default_tz_for_local_times() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_rfc3339("2024-07-01T12:00:00", default_tz=berlin) == at(2024, 7, 1, 10)
    assert parse_rfc3339("2024-01-01T12:00:00", default_tz=berlin) == at(2024, 1, 1, 11)
    # An explicit zone wins over the default.
    assert parse_rfc3339("2024-01-01T12:00:00Z", default_tz=berlin) == at(2024, 1, 1, 12)


_ZONES = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)


@given(
    st.datetimes(
        min_value=datetime(1700, 1, 1), max_value=datetime(2250, 12, 31), timezones=_ZONES
    ),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["colon", "compact", "Z"]),
)
def test_rfc3339_matches_datetime(
    dt: datetime, nanos: int, digits: int, sep: str, zone_style: str
) -> None:
    offset = dt.utcoffset()
    assert offset is not None
    if zone_style == "Z":
        dt = dt.astimezone(UTC)
        zone = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        hh, mm = divmod(abs(minutes), 60)
        zone = f"{sign}{hh:02d}:{mm:02d}" if zone_style == "colon" else f"{sign}{hh:02d}{mm:02d}"
    frac9 = f"{dt.microsecond:06d}{nanos:03d}"
    frac = "." + frac9[:digits] if digits else ""
    text = dt.strftime("%Y-%m-%d") + sep + dt.strftime("%H:%M:%S") + frac + zone
    want = ns_of(dt.replace(microsecond=0)) + (
        int(frac9[:digits]) * 10 ** (9 - digits) if digits else 0
    )
    if not -(2**63) <= want < 2**63:
        assert parse_rfc3339(text) is None
        return
    assert parse_rfc3339(text) == want
    assert parse_rfc3339(text) == want


# --- CLF, log4j, syslog --------------------------------------------------------------------


def test_clf() -> None:
    assert parse_clf("10/Oct/2000:13:55:36 -0700") == at(2000, 10, 10, 20, 55, 36)
    assert parse_clf("1/Jan/2000:00:00:00 +0000") == at(2000, 1, 1)
    assert parse_clf("10/Oct/2000:13:55:36.250 +0000") == at(2000, 10, 10, 13, 55, 36) + 25 * 10**7
    for bad in ("10/Foo/2000:13:55:36 -0700", "10/Oct/2000:13:55:36", "32/Oct/2000:00:00:00 +0000"):
        assert parse_clf(bad) is None


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=_ZONES)
)
def test_clf_matches_strptime(dt: datetime) -> None:
    dt = dt.replace(microsecond=0)
    text = dt.strftime("%d/%b/%Y:%H:%M:%S %z")
    assert parse_clf(text) == ns_of(datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z"))


def test_log4j() -> None:
    assert parse_log4j("2016-12-19 18:01:53,612") == at(2016, 12, 19, 18, 1, 53) + 612_000_000
    assert parse_log4j("2016-12-19 18:01:53.612") == at(2016, 12, 19, 18, 1, 53) + 612_000_000
    paris = ZoneInfo("Europe/Paris")
    assert parse_log4j("2016-12-19 18:01:53", tz=paris) == at(2016, 12, 19, 17, 1, 53)
    assert parse_log4j("2016-12-19 18:01:53,612Z") is None


NOW = at(2024, 6, 15, 12)


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("Oct 11 22:14:15", NOW, at(2023, 10, 11, 22, 14, 15)),  # 4 months ahead: last year
        ("Jun 16 00:00:00", NOW, at(2024, 6, 16)),  # a little ahead: this year
        ("Jul 14 00:00:00", NOW, at(2024, 7, 14)),  # under a month ahead
        ("Jul 17 00:00:00", NOW, at(2023, 7, 17)),  # over a month ahead
        ("Dec 31 23:59:59", at(2025, 1, 2), at(2024, 12, 31, 23, 59, 59)),
        ("Jan  1 00:00:01", at(2024, 12, 31), at(2025, 1, 1, 0, 0, 1)),
        ("Jan 1 00:00:01.25", at(2024, 12, 31), at(2025, 1, 1, 0, 0, 1) + 250_000_000),
        ("Feb 29 12:00:00", at(2025, 3, 10), at(2024, 2, 29, 12)),
        ("Mar  1 12:00:00", at(2025, 3, 10), at(2025, 3, 1, 12)),
    ],
)
def test_syslog3164_year_inference(text: str, now: int, expected: int) -> None:
    assert parse_syslog3164(text, now_ns=now, tz=UTC) == expected


def test_syslog3164_zone_and_invalid() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    assert parse_syslog3164("Mar  1 09:00:00", now_ns=NOW, tz=tokyo) == at(2024, 3, 1)
    for bad in ("Foo  1 00:00:00", "Mar 32 00:00:00", "Mar  1 24:00:00", "Mar  1 00:00", "Mar"):
        assert parse_syslog3164(bad, now_ns=NOW, tz=UTC) is None


# --- Epoch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000, 1_700_000_000 * NS),
        ("1700000000.123456789", 1_700_000_000_123_456_789),
        ("1700000000.5", 1_700_000_000_500_000_000),
        (9_000_000_000, 9_000_000_000 * NS),  # seconds, year 2255
        (100_000_000_000, 100_000_000_000 * 10**6),  # 1e11: milliseconds
        (1_700_000_000_123, 1_700_000_000_123_000_000),
        ("1700000000123.456", 1_700_000_000_123_456_000),
        (1_700_000_000_123_456, 1_700_000_000_123_456_000),
        (1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
        (1.5, 1_500_000_000),
        (-1, -NS),
        ("-1.5", -1_500_000_000),
        (0, 0),
    ],
)
def test_epoch(value: str | int | float, expected: int) -> None:
    assert parse_epoch(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        float("nan"),
        float("inf"),
        "",
        "1e9",
        "0x10",
        "12a",
        "1.2.3",
        10**30,
        "٣",
        99_999_999_999,
    ],
)
def test_epoch_rejects(value: str | int | float) -> None:
    assert parse_epoch(value) is None


# --- User formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("%Y-%m-%d %H:%M:%S", "2024-01-02 03:04:05", at(2024, 1, 2, 3, 4, 5)),
        (
            "%d/%m/%Y %H:%M:%S.%f",
            "02/01/2024 03:04:05.123456789",
            at(2024, 1, 2, 3, 4, 5) + 123456789,
        ),
        ("%d/%m/%Y %H:%M:%S.%f", "02/01/2024 03:04:05.5", at(2024, 1, 2, 3, 4, 5) + 500_000_000),
        ("%Y%m%dT%H%M%S%z", "20240102T030405+0100", at(2024, 1, 2, 2, 4, 5)),
        ("%b %d %Y %I:%M %p", "Jan 02 2024 03:04 PM", at(2024, 1, 2, 15, 4)),
        ("%b %d %Y %I:%M %p", "Jan 02 2024 12:04 AM", at(2024, 1, 2, 0, 4)),
        ("%A, %d %B %Y %T %Z", "Tuesday, 02 January 2024 03:04:05 UTC", at(2024, 1, 2, 3, 4, 5)),
        ("%Y-%j %H", "2024-060 10", at(2024, 2, 29, 10)),
        ("%F %T", "2024-01-02 03:04:05", at(2024, 1, 2, 3, 4, 5)),
        ("%s", "1700000000", 1_700_000_000 * NS),
        ("[%y/%m/%d %H:%M:%S]", "[24/01/02 03:04:05]", at(2024, 1, 2, 3, 4, 5)),
        ("%Y-%m-%d %H:%M:%S", "2024-01-02  03:04:05", at(2024, 1, 2, 3, 4, 5)),
    ],
)
def test_compile_format(fmt: str, text: str, expected: int) -> None:
    assert compile_format(fmt)(text) == expected


def test_compile_format_zone_year_and_errors() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert compile_format("%Y-%m-%d %H:%M", tz=paris)("2024-07-01 12:00") == at(2024, 7, 1, 10)
    yearless = compile_format("%b %d %H:%M:%S", now_ns=lambda: NOW)
    assert yearless("Oct 11 22:14:15") == at(2023, 10, 11, 22, 14, 15)
    parse = compile_format("%Y-%m-%d")
    for bad in ("2024-02-30", "2024-1-2x", "x", ""):
        assert parse(bad) is None
    assert compile_format("%s")("9" * 5000) is None  # no int() of a huge digit string
    assert compile_format("%j %H")("060 10") is None  # a day of the year needs a year
    with pytest.raises(ValueError, match="unsupported directive"):
        compile_format("%Q")
    with pytest.raises(ValueError, match="lone"):
        compile_format("%Y%")


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_compile_format_matches_strptime(dt: datetime) -> None:
    fmt = "%d %b %Y, %H.%M.%S.%f"
    text = dt.strftime(fmt)
    assert compile_format(fmt)(text) == ns_of(datetime.strptime(text, fmt).replace(tzinfo=UTC))


# --- Dispatch ------------------------------------------------------------------------------


def test_parse_any() -> None:
    assert parse_any("2024-01-02T03:04:05Z") == at(2024, 1, 2, 3, 4, 5)
    assert parse_any("2024-01-02 03:04:05,5") == at(2024, 1, 2, 3, 4, 5) + 500_000_000
    assert parse_any("10/Oct/2000:13:55:36 -0700") == at(2000, 10, 10, 20, 55, 36)
    assert parse_any("1700000000123") == 1_700_000_000_123_000_000
    assert parse_any("-1") == -NS
    assert parse_any("Oct 11 22:14:15") is not None
    assert parse_any("yesterday") is None
    assert parse_any("") is None


def test_ts_from_fields() -> None:
    keys = ("ts", "time")
    assert ts_from_fields({"ts": "nonsense", "time": 1700000000}, keys) == 1_700_000_000 * NS
    assert ts_from_fields({"ts": True, "time": [1]}, keys) is None
    assert ts_from_fields({"ts": 1.5}, keys) == 1_500_000_000
