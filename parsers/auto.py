"""Auto-detection, per line, from the first characters (no parser is tried blindly):

==========================================  ==============================================
line starts with                            parsed as
==========================================  ==============================================
``{``                                       JSON
``<`` and a digit; or ``Mmm `` (a month)    syslog (RFC 5424 / 3164, the file form too)
``host ident user [`` (four tokens)         CLF / combined access log (``parsers.clf``)
``[2024-01-02 03:04:05,678]`` or without    a timestamped text line (log4j, Python, Kafka,
the brackets, ``T`` or zone; ``2024/01/02`` Go): ``ts``, the level word, ``message``; logfmt
                                            after the timestamp is parsed as logfmt
``key=``                                    logfmt
text, then two or more ``key=value``        ``message`` (the text) and the logfmt fields
anything else                               raw, with a level word if one is near the start
==========================================  ==============================================

A line that looked like a format but does not parse as it falls through to the next rules and
at worst to raw: auto mode never reports an error, it keeps the line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any, Final

from parsers._base import Parsed, Parser
from parsers.json import JsonParser
from parsers.levels import level_from_text, normalize_level
from parsers.logfmt import LogfmtParser
from parsers.syslog import SyslogParser
from parsers.timestamps import _MONTHS, parse_rfc3339, resolve_tz

__all__ = ["AutoParser"]

# Four tokens then "[digit": "1.2.3.4 - frank [10/Oct/2000:13:55:36 -0700] ...".
_CLF_HINT_RE: Final = re.compile(r"[^ \[]+ [^ ]+ [^ \[]+ \[[0-9]", re.ASCII)
# A leading timestamp: ISO 8601 / log4j, or Go's log package ("2006/01/02 15:04:05").
_TS_PREFIX_RE: Final = re.compile(
    r"(\[)?([0-9]{4}[-/][0-9]{2}[-/][0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?)(?(1)\]) *",
    re.ASCII,
)
# A level word right after the timestamp: "INFO ", "[warn] ", "ERROR: ", "info  ".
_LEVEL_WORD_RE: Final = re.compile(r"\[?([A-Za-z]{4,8})\]?:? +", re.ASCII)
_LOGFMT_START_RE: Final = re.compile(r"[A-Za-z_@][A-Za-z0-9_.@/-]*=", re.ASCII)
# A "key=value" word later in a line: "GET /x done user=bob took=3ms".
_KEY_VALUE_RE: Final = re.compile(r"(?<![^ ])[A-Za-z_@][A-Za-z0-9_.@/-]*=[^ =]", re.ASCII)


class AutoParser:
    """Detect the format of each line; see the module docstring.

    Options: ``tz`` (zone for timestamps without one), ``now_ns`` (clock for syslog years).
    """

    name = "auto"

    def __init__(self, *, tz: str | tzinfo = UTC, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._tz = resolve_tz(tz)
        self._json = JsonParser(tz=self._tz)
        self._syslog = SyslogParser(tz=self._tz, now_ns=now_ns)
        self._logfmt = LogfmtParser(tz=self._tz)
        self._clf: Parser | None
        try:
            # Imported here: the CLF parser is a sibling module that may be absent in a
            # trimmed build, and auto mode must still work without it.
            from parsers.clf import ClfParser  # noqa: PLC0415 (see the comment above)
        except ImportError:
            self._clf = None
        else:
            self._clf = ClfParser("auto", tz=self._tz)

    def parse(self, line: str) -> Parsed:
        """Parse one line with the format its first characters suggest."""
        c = line[:1]
        if c == "{":
            got = self._json.parse(line)
            if got.error is None:
                return got
        elif c == "<":
            if line[1:2].isdigit():
                got = self._syslog.parse(line)
                if got.error is None:
                    return got
        elif line[:3] in _MONTHS and line[3:4] == " ":
            got = self._syslog.parse(line)
            if got.error is None:
                return got
        if "0" <= c <= "9" or c == "[":
            m = _TS_PREFIX_RE.match(line)
            if m is not None:
                stamped = self._timestamped(line, m)
                if stamped is not None:
                    return stamped
        if self._clf is not None and _CLF_HINT_RE.match(line):
            got = self._clf.parse(line)
            if got.error is None:
                return got
        if _LOGFMT_START_RE.match(line):
            got = self._logfmt.parse(line)
            if got.error is None:
                return got
        elif "=" in line:
            got_kv = self._trailing_logfmt(line)
            if got_kv is not None:
                return got_kv
        return Parsed(level=level_from_text(line))

    def _trailing_logfmt(self, line: str) -> Parsed | None:
        """Text, then two or more ``key=value`` words: the text becomes ``message``, the
        rest is parsed as logfmt (if it is valid logfmt)."""
        first = _KEY_VALUE_RE.search(line)
        if first is None or _KEY_VALUE_RE.search(line, first.end()) is None:
            return None
        got = self._logfmt.parse(line[first.start() :])
        if got.error is not None or "message" in got.fields:
            return None
        fields = {"message": line[: first.start()].rstrip(), **got.fields}
        return Parsed(fields=fields, ts=got.ts, level=got.level or level_from_text(line))

    def _timestamped(self, line: str, m: re.Match[str]) -> Parsed | None:
        ts = parse_rfc3339(m.group(2).replace("/", "-"), default_tz=self._tz)
        if ts is None:
            return None
        pos = m.end()
        if _LOGFMT_START_RE.match(line, pos):
            got = self._logfmt.parse(line[pos:])
            if got.error is None:
                return Parsed(
                    fields=got.fields, ts=ts if got.ts is None else got.ts, level=got.level
                )
        level = None
        w = _LEVEL_WORD_RE.match(line, pos)
        if w is not None:
            level = normalize_level(w.group(1))
            if level is not None:
                pos = w.end()
        if level is None:
            level = level_from_text(line)
        fields: dict[str, Any] = {"message": line[pos:]}
        return Parsed(fields=fields, ts=ts, level=level)
