"""Times on the command line: durations (``--since 15m``) and instants (``--from``/``--to``).

Instants, in the forms people type:

- RFC 3339: ``2024-05-01T12:00:00Z``, ``2024-05-01 12:00:00.5+02:00``, ``2024-05-01T12:00``;
- a date: ``2024-05-01`` (midnight);
- a time of day: ``14:30``, ``14:30:05``, ``09:15:00.250Z`` (today, in the given or local zone;
  like ``journalctl --since 14:30``, never silently yesterday);
- ``now``, ``today``, ``yesterday`` (midnight);
- a duration meaning that long ago: ``--from 2h``.

Without a zone a time is in the local zone of the machine running ``wharf`` (set ``TZ=UTC``
for UTC), as ``date``, ``journalctl`` and ``git log --since`` read it: the person typing
``--from 09:00`` means their nine o'clock. Give ``Z`` or ``+02:00`` to be exact.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from datetime import timezone as fixed_zone
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
_ZONE: Final = r"([Zz]|[+-]\d{2}:?\d{2})"
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    rf"\s*{_ZONE}?)?"
)
_TIME_OF_DAY: Final = re.compile(
    rf"(\d{{1,2}}):(\d{{2}})(?::(\d{{2}})(?:\.(\d{{1,9}}))?)?\s*{_ZONE}?"
)
# 400 weeks: anything longer is a typo, and it keeps the result far from int64 overflow.
MAX_DURATION_NS: Final = 400 * _NS["w"]
_FORMS: Final = (
    "use RFC 3339 like 2024-05-01T12:00:00Z, a date like 2024-05-01, a time of day like "
    "14:30, or a duration ago like 2h"
)


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


def _zone(text: str, zone: str | None, local: tzinfo | None) -> tzinfo | None:
    """The zone written in the text, else ``local`` (``None``: the machine's local zone)."""
    if not zone:
        return local
    if zone.upper() == "Z":
        return UTC
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise InvalidArgument(f"invalid time {text!r}: bad zone offset {zone}")
    offset = timedelta(hours=hours, minutes=minutes)
    return fixed_zone(offset if zone[0] == "+" else -offset)


def _to_ns(dt: datetime, frac: str | None) -> int:
    """Nanoseconds since the epoch of ``dt`` (naive: the local zone) plus a fraction."""
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "").ljust(9, "0") or 0)


def _today(now_ns: int, zone: tzinfo | None) -> date:
    seconds = now_ns // 1_000_000_000
    if zone is None:
        return datetime.fromtimestamp(seconds).date()
    return datetime.fromtimestamp(seconds, zone).date()


def parse_time(text: str, now_ns: int | None = None, local: tzinfo | None = None) -> int:
    """An instant as nanoseconds since the epoch (see the module docstring for the forms).

    ``local`` is the zone of times written without one (``None``: this machine's zone)."""
    s = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    word = s.lower()
    if word == "now":
        return now
    if word in ("today", "yesterday"):
        day = _today(now, local) - timedelta(days=1 if word == "yesterday" else 0)
        return _to_ns(datetime.combine(day, dtime(), local), None)
    if _DURATION.fullmatch(word):
        return now - parse_duration(s)
    m = _RFC3339.fullmatch(s)
    if m is not None:
        year, month, day_, hour, minute, second, frac, zone = m.groups()
        fields = (int(year), int(month), int(day_), int(hour or 0), int(minute or 0))
    else:
        t = _TIME_OF_DAY.fullmatch(s)
        if t is None:
            raise InvalidArgument(f"invalid time {text!r}: {_FORMS}")
        hour, minute, second, frac, zone = t.groups()
        day = _today(now, _zone(text, zone, local))
        fields = (day.year, day.month, day.day, int(hour), int(minute))
    tz = _zone(text, zone, local)
    try:
        dt = datetime(*fields, int(second or 0), tzinfo=tz)
    except ValueError as exc:
        raise InvalidArgument(f"invalid time {text!r}: {exc}") from None
    return _to_ns(dt, frac)


def time_range(
    since: str | None,
    start: str | None,
    end: str | None,
    now_ns: int | None = None,
    local: tzinfo | None = None,
) -> tuple[int | None, int | None]:
    """``(since_ns, until_ns)`` from ``--since`` or ``--from``/``--to`` (not both kinds)."""
    if since and start:
        raise InvalidArgument("give --since or --from, not both")
    now = time.time_ns() if now_ns is None else now_ns
    lo = now - parse_duration(since) if since else None
    if start:
        lo = parse_time(start, now, local)
    hi = parse_time(end, now, local) if end else None
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidArgument(f"empty time range: {start or since!r} is not before {end!r}")
    return lo, hi
