"""Apache httpd error logs, 2.4 and 2.2 forms, with Vector's VRL field names.

    [Thu Jun 27 06:58:09.169510 2019] [core:notice] [pid 11:tid 140084938034496] AH00094: ...
    [01/Mar/2021:12:00:19 +0000] [ab:alert] [pid 4803:tid 3814] [client 1.2.3.4:24259] msg
    [Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration

Fields as VRL's ``parse_apache_log(format: "error")``: ``module``, ``severity``, ``pid`` (int),
``thread``, ``client``, ``port`` (int), ``message``; lines in the threaded-MPM shape that VRL's
second pattern reads (``[pid N] (113)No route to host: AH00957: text``) give ``message1`` (the
error and ``AHnnnnn:`` parts) and ``message2`` (the text) instead of ``message``. Apache 2.2
lines (``[error]`` without a module, ``[client ip]`` without a port), which VRL does not read,
give ``severity``, ``client`` and ``message``.

The time becomes ``Parsed.ts``. By default the Apache forms (``Wed Oct 11 14:32:52[.123456]
2000``, local time, read in ``tz``), the CLF time VRL expects and RFC 3339 are accepted;
``timestamp_format`` (strptime-style) replaces them. The severity gives ``level``
(``trace1``..``trace8`` are ``trace``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any, Final

from parsers._base import Parsed
from parsers.levels import normalize_level
from parsers.timestamps import compile_format, parse_clf, parse_rfc3339

__all__ = ["ApacheErrorParser"]

# VRL's two patterns (vectordotdev/vrl src/stdlib/log_util.rs, REGEX_APACHE_ERROR_LOG), in
# Python syntax, tried in this order; then the Apache 2.2 shape.
_PATTERNS: Final = (
    re.compile(
        r"""\s*
        (-|\[(-|(?P<timestamp>[^\[]*))\])\s+
        (-|\[(-|(?P<module>[^:]*):(?P<severity>[^\[]*))\])\s+
        (-|\[\s*pid\s*(-|(?P<pid>[^:]*)(:\s*tid\s*(?P<thread>[^\[]*))?)\])\s
        (-|\[\s*client\s*(-|(?P<client>.*:?):(?P<port>[^\[]*))\])\s
        (-|(?P<message>.*))
        \s*\Z""",
        re.VERBOSE | re.DOTALL,
    ),
    re.compile(
        r"""\s*
        \[(?P<timestamp>[^\]]+)\]\s+
        \[(-|(?P<module>[^:]+)):(?P<severity>[^\]]+)\]\s+
        \[pid\s+(?P<pid>\d+)(:tid\s+(?P<thread>\d+))?\]\s+
        (?P<message1>[^\[]*?:\s+([^\[]*?:\s+)?)?
        (\[client\s+(?P<client>.+?):(?P<port>\d+)\]\s+)?
        (?P<message2>.*)
        (,\ referer\ .*)?
        \s*\Z""",
        re.VERBOSE | re.DOTALL,
    ),
    re.compile(
        r"""\s*
        \[(?P<timestamp>[^\]]+)\]\s+
        \[(?P<severity>[a-z]+[0-9]?)\]\s+
        (\[client\s+(?P<client>[^\]]+)\]\s+)?
        (?P<message>.*?)
        \s*\Z""",
        re.VERBOSE | re.DOTALL,
    ),
)

_INTS: Final = frozenset({"pid", "port"})

# Apache 2.4 writes ``%{cu}t``-style times by default (microseconds), 2.2 whole seconds; both
# are local time.
_APACHE_TIME_FORMATS: Final = ("%a %b %d %H:%M:%S.%f %Y", "%a %b %d %H:%M:%S %Y")


def _time_parser(timestamp_format: str | None, tz: tzinfo) -> Callable[[str], int | None]:
    if timestamp_format is not None:
        if timestamp_format in ("%+", "rfc3339"):
            return lambda text: parse_rfc3339(text, default_tz=tz)
        return compile_format(timestamp_format, tz=tz)
    apache = [compile_format(f, tz=tz) for f in _APACHE_TIME_FORMATS]

    def parse_default(text: str) -> int | None:
        if text[:1].isalpha():
            for parse in apache:
                ns = parse(text)
                if ns is not None:
                    return ns
            return None
        ns = parse_clf(text)
        if ns is None:
            ns = parse_rfc3339(text, default_tz=tz)
        return ns

    return parse_default


def _level(severity: str) -> str | None:
    if severity.startswith("trace"):
        return "trace"
    return normalize_level(severity)


class ApacheErrorParser:
    """Apache httpd error log lines (see the module docstring)."""

    name = "apache_error"

    def __init__(self, *, timestamp_format: str | None = None, tz: tzinfo = UTC) -> None:
        """``tz``: the server's zone (Apache writes error-log times in local time)."""
        self._parse_time = _time_parser(timestamp_format, tz)

    def parse(self, line: str) -> Parsed:
        for pattern in _PATTERNS:
            m = pattern.match(line)
            if m is not None:
                break
        else:
            return Parsed(error="not an Apache error log line")
        fields: dict[str, Any] = {}
        ns: int | None = None
        for key, value in m.groupdict().items():
            if value is None:
                continue
            if key == "timestamp":
                ns = self._parse_time(value)
                if ns is None:
                    return Parsed(error=f"failed parsing timestamp {value!r}")
            elif key in _INTS:
                try:
                    fields[key] = int(value)
                except ValueError:
                    return Parsed(error=f"failed parsing {key} {value!r}")
            else:
                fields[key] = value
        severity = fields.get("severity")
        level = _level(severity) if severity is not None else None
        return Parsed(fields=fields, ts=ns, level=level)
