"""Times on the command line: durations (``--since 15m``) and instants (``--from``/``--to``).

Instants are RFC 3339 (``2024-05-01T12:00:00Z``, ``2024-05-01 12:00:00.5+02:00``), a date
(``2024-05-01``, midnight UTC), ``now``, or a duration meaning that long ago (``--from 2h``).
A time without a zone is UTC: logs are read across hosts and zones, so the local zone of the
machine running ``wharf`` is the wrong default.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

from wharf.errors import InvalidArgument

_NS: Final = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86_400 * 1_000_000_000,
    "w": 7 * 86_400 * 1_000_000_000,
}
_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h|d|w)")
_DURATION: Final = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|ms|s|m|h|d|w))+")
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"([Zz]|[+-]\d{2}:?\d{2})?)?"
)
# 400 weeks: anything longer is a typo, and it keeps the result far from int64 overflow.
MAX_DURATION_NS: Final = 400 * _NS["w"]


def parse_duration(text: str) -> int:
    """``15m``, ``2h``, ``7d``, ``1h30m``, ``500ms`` → nanoseconds (positive)."""
    s = text.strip().lower()
    if not s or not _DURATION.fullmatch(s):
        raise InvalidArgument(
            f"invalid duration {text!r}: use a number and a unit, like 30s, 15m, 2h, 7d or 1h30m"
        )
    total = 0
    for number, unit in _PART.findall(s):
        total += round(float(number) * _NS[unit])
    if total <= 0:
        raise InvalidArgument(f"invalid duration {text!r}: it must be longer than zero")
    if total > MAX_DURATION_NS:
        raise InvalidArgument(f"invalid duration {text!r}: longer than 400 weeks")
    return total


def parse_time(text: str, now_ns: int | None = None) -> int:
    """An instant as nanoseconds since the epoch (see the module docstring for the forms)."""
    s = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if s.lower() == "now":
        return now
    if _DURATION.fullmatch(s.lower()):
        return now - parse_duration(s)
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise InvalidArgument(
            f"invalid time {text!r}: use RFC 3339 like 2024-05-01T12:00:00Z, a date like "
            "2024-05-01, or a duration ago like 2h"
        )
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        dt = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            tzinfo=UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidArgument(f"invalid time {text!r}: {exc}") from None
    ns = int(dt.timestamp()) * 1_000_000_000 + int((frac or "").ljust(9, "0") or 0)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise InvalidArgument(f"invalid time {text!r}: bad zone offset {zone}")
        ns -= sign * (hours * 3600 + minutes * 60) * 1_000_000_000
    return ns


def time_range(
    since: str | None, start: str | None, end: str | None, now_ns: int | None = None
) -> tuple[int | None, int | None]:
    """``(since_ns, until_ns)`` from ``--since`` or ``--from``/``--to`` (not both kinds)."""
    if since and start:
        raise InvalidArgument("give --since or --from, not both")
    now = time.time_ns() if now_ns is None else now_ns
    lo = now - parse_duration(since) if since else (parse_time(start, now) if start else None)
    hi = parse_time(end, now) if end else None
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidArgument(f"empty time range: {start or since!r} is not before {end!r}")
    return lo, hi
