"""``cli.timeparse``: durations and instants for ``--since``/``--from``/``--to``."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cli.timeparse import parse_duration, parse_time, time_range
from wharf.errors import InvalidArgument

S = 1_000_000_000
NOW = 1_700_000_000 * S  # 2023-11-14T22:13:20Z
PARIS = ZoneInfo("Europe/Paris")  # UTC+1 in November, UTC+2 in July
TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9: already 2023-11-15 at NOW


@pytest.mark.parametrize(
    ("text", "ns"),
    [("15m", 900 * S), ("2h", 7200 * S), ("7d", 7 * 86400 * S), ("1h30m", 5400 * S),
     ("500ms", S // 2), ("1.5s", 3 * S // 2), ("2W", 14 * 86400 * S), (" 10s ", 10 * S)],
)  # fmt: skip
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["banana", "", "15", "m", "-5m", "0s", "5 m", "1y", "9999w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14t22:13:20z", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14T21:13:20-0100", NOW),
        ("2023-11-15T07:13:20+09:00", NOW),
        ("2023-11-14 22:13:20 Z", NOW),
        ("2023-11-14T22:13:20.25Z", NOW + S // 4),
        ("2023-11-14T22:13:20.123456789Z", NOW + 123_456_789),
        ("2023-11-14T22:13Z", NOW - 20 * S),
        ("now", NOW),
        ("2h", NOW - 7200 * S),
        ("22:13:20Z", NOW),  # a time of day with a zone: today in that zone
        ("23:13:20+01:00", NOW),
        ("22:13Z", NOW - 20 * S),
    ],
)
def test_instants_with_a_zone_ignore_the_local_one(text: str, ns: int) -> None:
    for local in (None, UTC, PARIS, TOKYO):
        assert parse_time(text, NOW, local) == ns, local


def _at(local: ZoneInfo, *fields: int) -> int:
    return int(datetime(*fields, tzinfo=local).timestamp()) * S  # type: ignore[misc]


@pytest.mark.parametrize("local", [UTC, PARIS, TOKYO, ZoneInfo("America/St_Johns")])
def test_instants_without_a_zone_are_local(local: ZoneInfo) -> None:
    assert parse_time("2023-11-14 22:13:20", NOW, local) == _at(local, 2023, 11, 14, 22, 13, 20)
    assert parse_time("2023-11-14T22:13", NOW, local) == _at(local, 2023, 11, 14, 22, 13)
    assert parse_time("2023-07-01T12:00:00.5", NOW, local) == (_at(local, 2023, 7, 1, 12) + S // 2)
    # a date is local midnight; "today" and "yesterday" too, in the local calendar
    assert parse_time("2023-11-14", NOW, local) == _at(local, 2023, 11, 14)
    today = datetime.fromtimestamp(NOW // S, local).date()
    assert parse_time("today", NOW, local) == _at(local, today.year, today.month, today.day)
    assert parse_time("yesterday", NOW, local) == parse_time("today", NOW, local) - 86400 * S
    # a time of day is today's, local (journalctl --since 09:00), even when later than now
    assert parse_time("09:00", NOW, local) == _at(local, today.year, today.month, today.day, 9)
    assert parse_time("23:59:59.5", NOW, local) == (
        _at(local, today.year, today.month, today.day, 23, 59, 59) + S // 2
    )


def test_local_calendar_decides_the_day() -> None:
    """At NOW it is the 14th in Paris and already the 15th in Tokyo."""
    assert parse_time("today", NOW, PARIS) == _at(PARIS, 2023, 11, 14)
    assert parse_time("today", NOW, TOKYO) == _at(TOKYO, 2023, 11, 15)
    assert parse_time("08:00", NOW, TOKYO) == _at(TOKYO, 2023, 11, 15, 8)


def test_the_machine_zone_is_the_default() -> None:
    naive = datetime(2023, 11, 14, 22, 13, 20)  # read in this process's local zone
    assert parse_time("2023-11-14T22:13:20", NOW) == int(naive.timestamp()) * S


@pytest.mark.parametrize(
    "text",
    ["yesterday-ish", "2023-13-01", "2023-02-30T00:00:00Z", "2023-11-14T25:00:00Z",
     "2023-11-14T10:00:00+25:00", "1700000000", "14/Nov/2023", "24:00", "12:61", "banana",
     "2023-11-14T10:00:00 PST", ""],
)  # fmt: skip
def test_bad_instants(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid time"):
        parse_time(text, NOW)


def test_ranges() -> None:
    assert time_range("1h", None, None, NOW) == (NOW - 3600 * S, None)
    assert time_range(None, "2h", "1h", NOW) == (NOW - 7200 * S, NOW - 3600 * S)
    assert time_range(None, None, None, NOW) == (None, None)
    assert time_range(None, "22:00Z", "22:10Z", NOW) == (NOW - 800 * S, NOW - 200 * S)
    with pytest.raises(InvalidArgument, match="not both"):
        time_range("1h", "2h", None, NOW)
    with pytest.raises(InvalidArgument, match="empty time range"):
        time_range(None, "1h", "2h", NOW)
    with pytest.raises(InvalidArgument, match="invalid duration 'banana'"):
        time_range("banana", None, None, NOW)
