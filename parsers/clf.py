"""Apache/NCSA Common Log Format and Combined Log Format (access logs).

    127.0.0.1 bob frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326
    ... "GET / HTTP/1.1" 200 2326 "http://referrer/" "Mozilla/5.0 ..."

Fields follow Vector's VRL ``parse_common_log`` / ``parse_apache_log`` (so a pipeline moved from
Vector keeps its field names): ``host``, ``identity``, ``user``, ``message`` (the request line),
``method``, ``path``, ``protocol``, ``status`` (int), ``size`` (int), and for combined
``referrer``, ``agent``. A ``-`` means "absent" and yields no field. The timestamp becomes
``Parsed.ts``; a timestamp that does not parse fails the line, as in VRL.

Differences from VRL, on purpose: the quoted request, referrer and agent may contain ``\\"``
(Apache escapes quotes that way), and the default timestamp also accepts RFC 3339, which some
sites configure with ``%{%Y-%m-%dT%H:%M:%S%z}t``. Access lines carry no severity: ``level`` is
``None`` (a 5xx status is a fact about the request, kept in ``status``, not a log level).

Speed: access logs are the bulk of many sites' logs, so ``parse`` first tries a fast path: a
simpler regex for the shape web servers actually write (single blanks, a CLF time, no escaped
quotes), with the day's midnight remembered instead of recomputed. Anything else goes through
the general regex. The fast path returns a result only where the general one returns the same
(the tests check this property on generated lines). Both regexes read ``\\s``, ``\\d`` as ASCII.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any, Final, Literal

from parsers._base import Parsed, count_of
from parsers.timestamps import compile_format, parse_clf, parse_rfc3339

__all__ = ["ClfParser"]

# The general path. A double-quoted field with backslash escapes, captured without its quotes
# (unrolled loop: linear time, no backtracking between the two alternatives).
_QUOTED: Final = r'"([^"\\]*(?:\\.[^"\\]*)*)"'

_HEAD: Final = (
    # host, identity, user. VRL lets the user hold blanks (Apache does not escape them); the
    # bound keeps a garbage line from costing more than a few hundred passes over it.
    r"\s*(\S+)\s+(\S+)\s+(\S.{0,255}?)\s+"
    r"(?:-|\[([^\]]*)\])\s+"  # [timestamp] or -
    rf"(?:-|{_QUOTED})\s+"  # "request" or -
    r"(-|\d+)\s+(-|\d+)"  # status, size
)
_REFERRER_AGENT: Final = rf"\s+(?:-|{_QUOTED})\s+(?:-|{_QUOTED})"

# Combined allows anything after the agent, as VRL does: nginx's "main" format appends
# "$http_x_forwarded_for", and many sites append more; the first nine fields are still CLF.
_PATTERNS: Final = {
    # ``(?!)`` never matches: it only gives common lines the same nine groups, left None.
    "common": re.compile(_HEAD + r"\s*\Z(?:(?!)(.)(.))?", re.DOTALL | re.ASCII),
    "combined": re.compile(_HEAD + _REFERRER_AGENT, re.DOTALL | re.ASCII),
    "auto": re.compile(_HEAD + rf"(?:{_REFERRER_AGENT}|\s*\Z)", re.DOTALL | re.ASCII),
}

# The fast path: the shape Apache and nginx write (single blanks, a CLF time, quoted fields),
# with the time cut into its day, hour:minute and second. ``[^"]*`` is several times faster
# than the escape-aware ``[^"\\]*`` in CPython's engine, so escapes are checked afterwards.
_FAST_HEAD: Final = (
    r"(\S+) (\S+) (\S+) "
    r"\[([0-9]{2}/[A-Za-z]{3}/[0-9]{4}:)([0-9]{2}:[0-9]{2}):([0-9]{2})( [+-][0-9]{4})\] "
    r'"([^"]*)" (-|[0-9]{1,18}) (-|[0-9]{1,18})'  # longer: the general path checks the range
)
_FAST_PATTERNS: Final = {
    "common": re.compile(_FAST_HEAD + r"\Z(?:(?!)(.)(.))?", re.ASCII),
    "combined": re.compile(_FAST_HEAD + r' "([^"]*)" "([^"]*)"', re.ASCII),
    "auto": re.compile(_FAST_HEAD + r'(?: "([^"]*)" "([^"]*)"|\Z)', re.ASCII),
}


def _split_request(request: str, fields: dict[str, Any]) -> None:
    """VRL's ``(?P<method>\\w+)\\s+(?P<path>.*?)\\s+(?P<protocol>.*?)\\s*``: the path ends at the
    first blank after it and the protocol is the rest. A request with fewer than three parts
    (``GET /``, or binary garbage from a scanner) keeps only ``message``."""
    parts = request.split(None, 2)
    if len(parts) != 3:
        return
    method = parts[0]
    # re's \w is "alphanumeric or underscore".
    if not (method.isalnum() or method.replace("_", "a").isalnum()):
        return
    fields["method"] = method
    fields["path"] = parts[1]
    fields["protocol"] = parts[2]


def _time_parser(timestamp_format: str | None, tz: tzinfo) -> Callable[[str], int | None]:
    if timestamp_format is None:

        def parse_default(text: str) -> int | None:
            ns = parse_clf(text)
            if ns is None:
                ns = parse_rfc3339(text, default_tz=tz)
            return ns

        return parse_default
    if timestamp_format in ("%+", "rfc3339"):
        return lambda text: parse_rfc3339(text, default_tz=tz)
    return compile_format(timestamp_format, tz=tz)


# Bounds on the fast path's memo tables (days seen: date and zone; minutes of the day: at most
# 1440); a table that fills up is cleared.
_DAYS_MAX: Final = 1024
_NS: Final = 1_000_000_000
_MINUTES: dict[str, int | None] = {}


def _minute_ns(hm: str) -> int | None:
    """``HH:MM`` as nanoseconds since midnight, or None past 23:59 (as ``parse_clf`` does)."""
    ns = _MINUTES.get(hm, -1)
    if ns == -1:
        h, m = int(hm[:2]), int(hm[3:])
        ns = _MINUTES[hm] = (h * 3600 + m * 60) * _NS if h <= 23 and m <= 59 else None
    return ns


class ClfParser:
    """Common or combined access log lines; ``format="auto"`` accepts both."""

    name = "clf"

    def __init__(
        self,
        format: Literal["auto", "common", "combined"] = "auto",
        *,
        timestamp_format: str | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        """``timestamp_format`` is strptime-style (``%+`` for RFC 3339); by default the CLF
        time ``10/Oct/2000:13:55:36 -0700`` or RFC 3339 is accepted. ``tz`` applies to times
        without a zone only."""
        if format not in _PATTERNS:
            raise ValueError(f"unknown clf format {format!r}: expected auto, common or combined")
        self.format = format
        self._re = _PATTERNS[format]
        # The fast path knows only the default CLF time.
        self._fast = _FAST_PATTERNS[format].match if timestamp_format is None else None
        self._parse_time = _time_parser(timestamp_format, tz)
        self._error = "not a CLF log line" if format == "auto" else f"not a {format} log line"
        self._days: dict[str, int | None] = {}

    def parse(self, line: str) -> Parsed:
        if self._fast is not None:
            m = self._fast(line)
            if m is not None:
                parsed = self._parse_fast(m.groups())
                if parsed is not None:
                    return parsed
        return self._parse_general(line)

    def _parse_fast(self, groups: tuple[Any, ...]) -> Parsed | None:
        """The fast path's result, or None to leave the line to the general path."""
        host, identity, user, day, hm, sec, zone, request, status, size, referrer, agent = groups
        if "\\" in request or (referrer is not None and ("\\" in referrer or "\\" in agent)):
            return None
        key = day + zone
        base = self._days.get(key, -1)
        if base == -1:
            if len(self._days) >= _DAYS_MAX:
                self._days.clear()
            base = self._days[key] = parse_clf(day + "00:00:00" + zone)
        minute = _MINUTES.get(hm, -1)
        if minute == -1:
            minute = _minute_ns(hm)
        s = int(sec)
        if base is None or minute is None or s > 60:
            return None
        # _fields(), inlined: this is the hot path.
        fields: dict[str, Any] = {}
        if host != "-":
            fields["host"] = host
        if identity != "-":
            fields["identity"] = identity
        if user != "-":
            fields["user"] = user
        request = request.strip()
        if request != "-":
            fields["message"] = request
            _split_request(request, fields)
        if status != "-":
            fields["status"] = int(status)
        if size != "-":
            fields["size"] = int(size)
        if referrer is not None:
            if referrer != "-":
                fields["referrer"] = referrer
            if agent != "-":
                fields["agent"] = agent
        return Parsed(fields=fields, ts=base + minute + s * _NS)

    def _parse_general(self, line: str) -> Parsed:
        m = self._re.match(line)
        if m is None:
            return Parsed(error=self._error)
        host, identity, user, time, request, status, size, referrer, agent = m.groups()
        for name, digits in (("status", status), ("size", size)):
            if digits != "-" and count_of(digits) is None:
                shown = digits if len(digits) <= 24 else f"{digits[:20]}... ({len(digits)} digits)"
                return Parsed(error=f"failed parsing {name}: {shown} is above 2^63 - 1")
        ns: int | None = None
        if time is not None and time != "-":
            ns = self._parse_time(time)
            if ns is None:
                return Parsed(error=f"failed parsing timestamp {time!r}")
        return Parsed(
            fields=_fields(host, identity, user, request, status, size, referrer, agent), ts=ns
        )


def _fields(
    host: str,
    identity: str,
    user: str,
    request: str | None,
    status: str,
    size: str,
    referrer: str | None,
    agent: str | None,
) -> dict[str, Any]:
    """The record's fields from the captured texts (``-`` and None are absent)."""
    fields: dict[str, Any] = {}
    if host != "-":
        fields["host"] = host
    if identity != "-":
        fields["identity"] = identity
    if user != "-":
        fields["user"] = user
    if request is not None:
        request = request.strip()
        if request != "-":
            fields["message"] = request
            _split_request(request, fields)
    if status != "-":
        fields["status"] = int(status)
    if size != "-":
        fields["size"] = int(size)
    if referrer is not None and referrer != "-":
        fields["referrer"] = referrer
    if agent is not None and agent != "-":
        fields["agent"] = agent
    return fields
