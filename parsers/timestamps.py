"""Timestamp parsing for log lines: text in, nanoseconds since the Unix epoch out.

Every function returns an ``int`` (nanoseconds, UTC) or ``None`` when the text is not in that
format; none of them raises on any ``str``. The text must be the timestamp alone (no leading or
trailing characters).

These run once per log line, so they avoid ``datetime.strptime`` (slow, and it truncates
fractions to microseconds): each format is one precompiled ASCII regex, the calendar arithmetic
is done on integers, and small memo tables keep what log lines share (the day number of a
date; for RFC 3339 the whole "YYYY-MM-DDTHH:MM:SS", so that a busy log's lines within one
second only slice off their fraction and zone). The tables are bounded and cleared when full;
they are plain dicts, safe to share between threads under the GIL (a race costs a recompute).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "compile_format",
    "parse_any",
    "parse_clf",
    "parse_epoch",
    "parse_log4j",
    "parse_rfc3339",
    "parse_syslog3164",
    "resolve_tz",
    "ts_from_fields",
]

_NS: Final = 1_000_000_000
_DAY_S: Final = 86_400
# A timestamp must fit a signed 64-bit count of nanoseconds (years 1678..2262): that is what
# the record, the batch header and every downstream tool (Kafka, Arrow, Go) can hold.
_NS_MIN: Final = -(2**63)
_NS_MAX: Final = 2**63 - 1
# Bound on each memo table below; when full it is cleared (logs move forward in time, so old
# entries are dead weight and an LRU would cost more per hit than it saves).
_CACHE_MAX: Final = 4096

_MONTHS: Final[dict[str, int]] = {}
for _i, _name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
):
    for _spelling in (_name, _name.capitalize(), _name.upper()):
        _MONTHS[_spelling] = _i
_MONTHS_FULL: Final[dict[str, int]] = {
    name: i
    for i, name in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        1,
    )
}
_DAYS_IN_MONTH: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_POW10: Final[tuple[int, ...]] = tuple(10**i for i in range(20))


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _valid_date(y: int, m: int, d: int) -> bool:
    if not 1 <= m <= 12 or d < 1:
        return False
    if m == 2 and d == 29:
        return _is_leap(y)
    return d <= _DAYS_IN_MONTH[m]


_date_cache: dict[tuple[int, int, int], int] = {}


def _epoch_days(y: int, m: int, d: int) -> int | None:
    """Days since the epoch, or None for an impossible date (Feb 30, month 13)."""
    key = (y, m, d)
    days = _date_cache.get(key)
    if days is None:
        if not _valid_date(y, m, d):
            return None
        if len(_date_cache) >= _CACHE_MAX:
            _date_cache.clear()
        days = _date_cache[key] = _days_from_civil(y, m, d)
    return days


def _frac_ns(frac: str | None) -> int:
    """Nanoseconds of a fraction's digits; digits past the ninth are dropped (not rounded)."""
    if not frac:
        return 0
    n = len(frac)
    if n >= 9:
        return int(frac[:9])
    return int(frac) * _POW10[9 - n]


_offset_cache: dict[tuple[tzinfo, int, int, int, int, int], int] = {}


# The private helpers below take the broken-down time positionally: they run per line, and
# keyword passing would cost more than the arithmetic they do.
def _utc_offset_s(tz: tzinfo, y: int, mo: int, d: int, h: int, mi: int) -> int | None:
    """Seconds east of UTC that ``tz`` applies to the wall-clock time given (fold=0)."""
    if tz is UTC:
        return 0
    if isinstance(tz, timezone):
        return int(tz.utcoffset(None).total_seconds())
    key = (tz, y, mo, d, h, mi)
    cached = _offset_cache.get(key)
    if cached is not None:
        return cached
    try:
        off = tz.utcoffset(datetime(y, mo, d, h, mi))
    except (ValueError, OverflowError, TypeError):
        return None
    if off is None:
        return None
    if len(_offset_cache) >= _CACHE_MAX:
        _offset_cache.clear()
    seconds = _offset_cache[key] = int(off.total_seconds())
    return seconds


def _to_ns(
    y: int, mo: int, d: int, h: int, mi: int, s: int, frac_ns: int, offset_s: int
) -> int | None:
    """Combine validated-by-range fields into UTC nanoseconds (None when out of range)."""
    if h > 23 or mi > 59 or s > 60:
        return None
    days = _epoch_days(y, mo, d)
    if days is None:
        return None
    # A leap second (:60) is counted as the first second of the next minute, as timegm does.
    ns = ((days * _DAY_S + h * 3600 + mi * 60 + s - offset_s) * _NS) + frac_ns
    if not _NS_MIN <= ns <= _NS_MAX:
        return None
    return ns


def _local_to_ns(
    y: int, mo: int, d: int, h: int, mi: int, s: int, frac_ns: int, tz: tzinfo
) -> int | None:
    if y < 1 or y > 9999:
        return None
    off = _utc_offset_s(tz, y, mo, d, h, mi) if _valid_date(y, mo, d) else None
    if off is None:
        return None
    return _to_ns(y, mo, d, h, mi, s, frac_ns, off)


# Returned by ``_zone_offset_s`` for a zone like ``+25:00``: not ``None`` (that means "no zone,
# use the default") and far outside any real offset so no caller can mistake it for one.
_BAD_OFFSET: Final = -(1 << 62)


def _zone_offset_s(z: str | None, sign: str | None, oh: str | None, om: str | None) -> int | None:
    """Seconds east of UTC of a parsed zone; ``None`` means "no zone in the text"."""
    if z is not None:
        return 0
    if sign is None or oh is None or om is None:
        return None
    hours, minutes = int(oh), int(om)
    if hours > 23 or minutes > 59:
        return _BAD_OFFSET
    off = hours * 3600 + minutes * 60
    return -off if sign == "-" else off


# --- RFC 3339 / ISO 8601 -------------------------------------------------------------------

_RFC3339_RE: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d\d):?(\d\d))?",
    re.ASCII,
)


# Zone suffixes by text, for the fast path: "+hh:mm", "-hh:mm", "+hhmm", "-hhmm" -> seconds
# east of UTC. One dict lookup both validates and converts.
_ZONES: Final[dict[str, int]] = {
    f"{sign}{h:02d}{colon}{m:02d}": (1 if sign == "+" else -1) * (h * 3600 + m * 60)
    for sign in "+-"
    for colon in ("", ":")
    for h in range(24)
    for m in range(60)
}
# "YYYY-MM-DDTHH:MM:SS" (as written, separator included) -> seconds since the epoch, UTC.
# Filled by the general path for valid times in years 1900..2199 (well inside int64 ns, so
# the fast path needs no range check). Lines of a busy log share their second.
_second_cache: dict[str, int] = {}


def parse_rfc3339(s: str, *, default_tz: tzinfo = UTC) -> int | None:
    """Parse RFC 3339 / ISO 8601 extended date-time, e.g. ``2003-10-11T22:14:15.123456789Z``.

    Accepts ``T``, ``t`` or a space between date and time; a fraction of any length (all nine
    nanosecond digits are kept, further digits dropped; ``,`` is accepted as the decimal mark as
    ISO 8601 allows); a zone ``Z``/``z``/``±hh:mm``/``±hhmm``. Without a zone, the wall-clock time
    is read in ``default_tz``. A leap second ``:60`` counts as the next minute's first second.
    """
    # Fast path: a second seen before, then the fraction and zone by slicing. Anything it does
    # not recognize goes to the general path, which has the final word.
    base = _second_cache.get(s[:19])
    if base is not None:
        tail = s[19:]
        if not tail:
            if default_tz is UTC:
                return base * _NS
            return _parse_rfc3339_general(s, default_tz)
        last = tail[-1]
        if last in "Zz":
            off = 0
            body = tail[:-1]
        else:
            zone = _ZONES.get(tail[-6:])
            if zone is not None:
                off = zone
                body = tail[:-6]
            else:
                zone = _ZONES.get(tail[-5:])
                if zone is not None:
                    off = zone
                    body = tail[:-5]
                elif default_tz is UTC:
                    off = 0
                    body = tail
                else:
                    return _parse_rfc3339_general(s, default_tz)
        if not body:
            return (base - off) * _NS
        digits = body[1:]
        if (body[0] == "." or body[0] == ",") and digits.isdigit() and digits.isascii():
            n = len(digits)
            frac = int(digits) * _POW10[9 - n] if n < 9 else int(digits[:9])
            return (base - off) * _NS + frac
    return _parse_rfc3339_general(s, default_tz)


def _parse_rfc3339_general(s: str, default_tz: tzinfo) -> int | None:
    m = _RFC3339_RE.fullmatch(s)
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac, z, sign, oh, om = m.groups()
    year, month, day, hour, minute, second = int(y), int(mo), int(d), int(h), int(mi), int(sec)
    if 1900 <= year < 2200 and hour <= 23 and minute <= 59 and second <= 60:
        days = _epoch_days(year, month, day)
        if days is not None:
            if len(_second_cache) >= _CACHE_MAX:
                _second_cache.clear()
            _second_cache[s[:19]] = days * _DAY_S + hour * 3600 + minute * 60 + second
    off = _zone_offset_s(z, sign, oh, om)
    if off is None:
        return _local_to_ns(year, month, day, hour, minute, second, _frac_ns(frac), default_tz)
    if off == _BAD_OFFSET:
        return None
    return _to_ns(year, month, day, hour, minute, second, _frac_ns(frac), off)


# --- Common Log Format ---------------------------------------------------------------------

_CLF_RE: Final = re.compile(
    r"(\d\d?)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d)(?:\.(\d+))? ([+-])(\d\d):?(\d\d)",
    re.ASCII,
)


def parse_clf(s: str) -> int | None:
    """Parse the Common Log Format time, e.g. ``10/Oct/2000:13:55:36 -0700``.

    Apache and nginx always write the zone; an optional fraction (``:36.123``, from
    ``%{%d/%b/%Y:%T}t.%{msec_frac}t``-style formats) is kept.
    """
    m = _CLF_RE.fullmatch(s)
    if m is None:
        return None
    d, mon, y, h, mi, sec, frac, sign, oh, om = m.groups()
    month = _MONTHS.get(mon)
    if month is None:
        return None
    off = _zone_offset_s(None, sign, oh, om)
    if off is None or off == _BAD_OFFSET:
        return None
    return _to_ns(int(y), month, int(d), int(h), int(mi), int(sec), _frac_ns(frac), off)


# --- BSD syslog (RFC 3164) -----------------------------------------------------------------

_SYSLOG3164_RE: Final = re.compile(
    r"([A-Za-z]{3}) {1,2}(\d\d?) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?",
    re.ASCII,
)
# How far ahead of "now" a year-less timestamp may be and still be this year: clocks drift and
# hosts sit in other zones, so a little future is normal; a lot means last year (a December
# line read in January). Beats and rsyslog use the same idea.
_FUTURE_SLACK_NS: Final = 31 * _DAY_S * _NS

_year_cache: dict[tuple[int, tzinfo], int] = {}


def _year_of(now_ns: int, tz: tzinfo) -> int:
    # Cache per hour of "now": the year changes at most once per hour boundary.
    key = (now_ns // (3600 * _NS), tz)
    year = _year_cache.get(key)
    if year is None:
        if len(_year_cache) >= _CACHE_MAX:
            _year_cache.clear()
        try:
            year = datetime.fromtimestamp(now_ns / _NS, tz).year
        except (ValueError, OverflowError, OSError):
            year = 1970
        _year_cache[key] = year
    return year


def _infer_year_ns(
    mo: int, d: int, h: int, mi: int, sec: int, frac_ns: int, now_ns: int, tz: tzinfo
) -> int | None:
    """Place a year-less time in the latest year that puts it at most ~1 month after now."""
    year = _year_of(now_ns, tz)
    latest = now_ns + _FUTURE_SLACK_NS
    for y in (year + 1, year, year - 1):
        ns = _local_to_ns(y, mo, d, h, mi, sec, frac_ns, tz)
        if ns is not None and ns <= latest:
            return ns
    # Only Feb 29 gets here (no leap year among the three): take the latest leap year.
    if mo == 2 and d == 29:
        y = year - 2
        while not _is_leap(y):
            y -= 1
        return _local_to_ns(y, mo, d, h, mi, sec, frac_ns, tz)
    return None


def parse_syslog3164(s: str, *, now_ns: int, tz: tzinfo) -> int | None:
    """Parse a BSD syslog time, e.g. ``Oct 11 22:14:15`` or ``Oct  1 22:14:15.123``.

    The text has no year and no zone: it is wall-clock time in ``tz``, and the year is the
    latest one that puts it no more than 31 days after ``now_ns``. So ``Dec 31 23:59:59`` read
    on January 2nd is last year's, ``Jan 1 00:00:01`` read on December 31st (a fast clock) is
    next year's, and a time up to a month ahead (clock skew) stays in this year.
    """
    m = _SYSLOG3164_RE.fullmatch(s)
    if m is None:
        return None
    mon, d, h, mi, sec, frac = m.groups()
    month = _MONTHS.get(mon)
    if month is None:
        return None
    return _infer_year_ns(month, int(d), int(h), int(mi), int(sec), _frac_ns(frac), now_ns, tz)


# --- log4j / Python logging ----------------------------------------------------------------

_LOG4J_RE: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:[,.](\d+))?", re.ASCII
)


def parse_log4j(s: str, *, tz: tzinfo = UTC) -> int | None:
    """Parse log4j's / Python logging's default ``yyyy-MM-dd HH:mm:ss,SSS`` (or ``.SSS``).

    The time has no zone and is read in ``tz``. The fraction may have 1 to 9+ digits.
    """
    m = _LOG4J_RE.fullmatch(s)
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac = m.groups()
    return _local_to_ns(int(y), int(mo), int(d), int(h), int(mi), int(sec), _frac_ns(frac), tz)


# --- Epoch numbers -------------------------------------------------------------------------

# Unit thresholds on |value|. Today is ~1.7e9 s = 1.7e12 ms = 1.7e15 us = 1.7e18 ns, and each
# unit is 1000x the previous, so each threshold sits ~60x above today's value in the smaller
# unit and ~17x below it in the larger one:
#   |v| <  1e11  -> seconds       (years before 5138)
#   |v| <  1e14  -> milliseconds  (from 1973 to 5138)
#   |v| <  1e17  -> microseconds  (from 1973 to 5138)
#   otherwise    -> nanoseconds   (from 1973)
# Values between 1e11 and 1e14 ms etc. are then bounded by the int64 nanosecond range
# (1677-09-21 .. 2262-04-11): anything outside it is rejected, in every unit.
_EPOCH_S_MAX: Final = 10**11
_EPOCH_MS_MAX: Final = 10**14
_EPOCH_US_MAX: Final = 10**17
_EPOCH_RE: Final = re.compile(r"(-?)(\d+)(?:\.(\d*))?", re.ASCII)


def _scale_epoch(int_part: int, frac_digits: str, negative: bool) -> int | None:
    if int_part < _EPOCH_S_MAX:
        unit_exp = 9
    elif int_part < _EPOCH_MS_MAX:
        unit_exp = 6
    elif int_part < _EPOCH_US_MAX:
        unit_exp = 3
    else:
        unit_exp = 0
    frac = 0
    if frac_digits and unit_exp:
        digits = frac_digits[:unit_exp]
        frac = int(digits) * _POW10[unit_exp - len(digits)]
    ns = int_part * _POW10[unit_exp] + frac
    if negative:
        ns = -ns
    if not _NS_MIN <= ns <= _NS_MAX:
        return None
    return ns


def parse_epoch(v: str | int | float) -> int | None:
    """Parse a Unix time in seconds, milliseconds, microseconds or nanoseconds.

    The unit is chosen by magnitude (see the thresholds above: below 1e11 seconds, below 1e14
    milliseconds, below 1e17 microseconds, else nanoseconds). Strings are read exactly (no float
    rounding: ``"1700000000.123456789"`` keeps every digit); ``bool``, NaN and infinities are
    not times. Results outside signed 64-bit nanoseconds are rejected.
    """
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return _scale_epoch(abs(v), "", v < 0)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        mag = abs(v)
        if mag < _EPOCH_S_MAX:
            ns = round(v * 1e9)
        elif mag < _EPOCH_MS_MAX:
            ns = round(v * 1e6)
        elif mag < _EPOCH_US_MAX:
            ns = round(v * 1e3)
        else:
            ns = round(v)
        return ns if _NS_MIN <= ns <= _NS_MAX else None
    if not isinstance(v, str):
        return None
    m = _EPOCH_RE.fullmatch(v)
    if m is None:
        return None
    sign, int_digits, frac_digits = m.groups()
    if len(int_digits) > 20:
        return None
    return _scale_epoch(int(int_digits), frac_digits or "", sign == "-")


# --- User formats --------------------------------------------------------------------------

_DIRECTIVES: Final[dict[str, tuple[str, str]]] = {
    # directive: (group name, regex)
    "Y": ("Y", r"\d{4}"),
    "y": ("y", r"\d\d"),
    "m": ("m", r"\d\d?"),
    "d": ("d", r"\d\d?"),
    "e": ("d", r" ?\d\d?"),
    "H": ("H", r"\d\d?"),
    "k": ("H", r" ?\d\d?"),
    "I": ("I", r"\d\d?"),
    "M": ("M", r"\d\d?"),
    "S": ("S", r"\d\d?"),
    "f": ("f", r"\d{1,9}"),
    "j": ("j", r"\d{1,3}"),
    "b": ("b", r"[A-Za-z]{3}"),
    "h": ("b", r"[A-Za-z]{3}"),
    "B": ("B", r"[A-Za-z]{3,9}"),
    "a": ("a", r"[A-Za-z]{3}"),
    "A": ("a", r"[A-Za-z]{6,9}"),
    "p": ("p", r"[AaPp][Mm]"),
    "z": ("z", r"[Zz]|[+-]\d\d:?\d\d"),
    "Z": ("Z", r"UTC|GMT|Z"),
    "s": ("s", r"-?\d{1,20}"),
}
_EXPANSIONS: Final = {"T": "%H:%M:%S", "F": "%Y-%m-%d", "D": "%m/%d/%y", "R": "%H:%M"}


def _translate(fmt: str) -> str:
    """Turn a strptime format into a regex with named groups."""
    for short, long in _EXPANSIONS.items():
        fmt = fmt.replace("%" + short, long)
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c == "%":
            if i + 1 >= n:
                raise ValueError(f"format {fmt!r} ends with a lone '%'")
            d = fmt[i + 1]
            i += 2
            if d == "%":
                out.append("%")
                continue
            if d in "nt":
                out.append(r"\s+")
                continue
            if d not in _DIRECTIVES:
                raise ValueError(f"unsupported directive %{d} in format {fmt!r}")
            name, pattern = _DIRECTIVES[d]
            if name in seen:
                out.append(f"(?:{pattern})")
            else:
                seen.add(name)
                out.append(f"(?P<{name}>{pattern})")
        elif c.isspace():
            while i < n and fmt[i].isspace():
                i += 1
            out.append(r"\s+")
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def compile_format(
    fmt: str,
    *,
    tz: tzinfo = UTC,
    now_ns: Callable[[], int] = time.time_ns,
) -> Callable[[str], int | None]:
    """Compile a strptime-style format into a fast parser (text -> ns or None).

    Supported: ``%Y %y %m %d %e %H %k %I %M %S %f %j %b %h %B %a %A %p %z %Z %s %T %F %D %R %n
    %t %%``. ``%f`` takes 1 to 9 digits (nanoseconds kept). Whitespace in the format matches
    one or more whitespace characters. Without ``%z`` the time is read in ``tz``; without a
    year, the year is inferred from ``now_ns()`` like syslog's (see ``parse_syslog3164``).
    The returned function requires the whole text to match. A format with an unknown directive
    raises ``ValueError`` here, at compile time, never when parsing.
    """
    regex = re.compile(_translate(fmt), re.ASCII)
    groups = set(regex.groupindex)

    def parse(s: str) -> int | None:
        m = regex.fullmatch(s)
        if m is None:
            return None
        g = m.groupdict()
        if "s" in groups:
            return parse_epoch(int(g["s"]))
        if g.get("b") is not None:
            month = _MONTHS.get(g["b"]) or _MONTHS.get(g["b"].lower())
        elif g.get("B") is not None:
            month = _MONTHS_FULL.get(g["B"].lower())
        elif g.get("m") is not None:
            month = int(g["m"])
        else:
            month = 1
        if month is None:
            return None
        day = int(g["d"]) if g.get("d") is not None else 1
        if g.get("j") is not None:
            doy = int(g["j"])
            month, day = 1, 1
        else:
            doy = 0
        hour = int(g["H"]) if g.get("H") is not None else 0
        if g.get("I") is not None:
            hour = int(g["I"])
            if not 1 <= hour <= 12:
                return None
            hour %= 12
            if (g.get("p") or "").lower() == "pm":
                hour += 12
        minute = int(g["M"]) if g.get("M") is not None else 0
        sec = int(g["S"]) if g.get("S") is not None else 0
        frac = _frac_ns(g.get("f"))
        off: int | None = None
        if g.get("z") is not None:
            zm = _ZONE_RE.fullmatch(g["z"])
            if zm is None:
                return None
            off = _zone_offset_s(*zm.groups())
            if off == _BAD_OFFSET:
                return None
        elif g.get("Z") is not None:
            off = 0
        if g.get("Y") is not None:
            year = int(g["Y"])
        elif g.get("y") is not None:
            yy = int(g["y"])
            year = 2000 + yy if yy < 69 else 1900 + yy  # POSIX's pivot
        else:
            if doy:
                return None  # a day of the year without a year names no day
            if off is not None:
                zone: tzinfo = timezone(timedelta(seconds=off))
            else:
                zone = tz
            return _infer_year_ns(month, day, hour, minute, sec, frac, now_ns(), zone)
        if doy:
            if doy > (366 if _is_leap(year) else 365):
                return None
            base = _local_to_ns(year, 1, 1, hour, minute, sec, frac, tz if off is None else UTC)
            if base is None:
                return None
            shift = (doy - 1) * _DAY_S * _NS - (off or 0) * _NS
            return base + shift
        if off is None:
            return _local_to_ns(year, month, day, hour, minute, sec, frac, tz)
        return _to_ns(year, month, day, hour, minute, sec, frac, off)

    return parse


_ZONE_RE: Final = re.compile(r"([Zz])|([+-])(\d\d):?(\d\d)", re.ASCII)


# --- Dispatch ------------------------------------------------------------------------------


def parse_any(s: str, *, tz: tzinfo = UTC) -> int | None:
    """Parse a timestamp in any of the formats above, chosen by its first characters.

    ``2024-…`` is RFC 3339 or log4j (zone-less times read in ``tz``); ``10/Oct/…`` is CLF;
    ``Oct 11 …`` is BSD syslog (year inferred from the current clock); a number is epoch
    seconds, milliseconds, microseconds or nanoseconds.
    """
    if s[4:5] == "-":
        return parse_rfc3339(s, default_tz=tz)
    n = len(s)
    if n < 1 or n > 64:
        return None
    c = s[0]
    if "0" <= c <= "9":
        if n >= 20 and (s[2] == "/" or s[1] == "/"):
            return parse_clf(s)
        return parse_epoch(s)
    if c == "-":
        return parse_epoch(s)
    if s[:3] in _MONTHS:
        return parse_syslog3164(s, now_ns=time.time_ns(), tz=tz)
    return None


def ts_from_fields(fields: Mapping[str, Any], keys: Iterable[str], tz: tzinfo = UTC) -> int | None:
    """The timestamp in the first of ``keys`` whose value parses (``parse_any`` for text,
    ``parse_epoch`` for numbers), or ``None``."""
    for key in keys:
        value = fields.get(key)
        if value is None:
            continue
        if value.__class__ is str:
            # RFC 3339 directly when it looks like it: the common case, one call less.
            ts = (
                parse_rfc3339(value, default_tz=tz)
                if value[4:5] == "-"
                else parse_any(value, tz=tz)
            )
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            ts = parse_epoch(value)
        else:
            continue
        if ts is not None:
            return ts
    return None


def resolve_tz(tz: str | tzinfo) -> tzinfo:
    """A tzinfo from a zone name (``"UTC"``, ``"Europe/Berlin"``) or a tzinfo as is.

    Raises ``ValueError`` for anything else (an unknown name, a path, a number): parsers call
    this when they are built, so a bad option fails at once, not per line.
    """
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise ValueError(f"a time zone must be a name like 'Europe/Berlin', got {tz!r}")
    if tz.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
