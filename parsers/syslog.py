"""Syslog: RFC 5424 (strict, go-syslog's validity rules) and RFC 3164 / BSD (lenient, as found
in /var/log/syslog and auth.log, with or without ``<PRI>``).

Fields (absent when the line has no such part, or has the nil value ``-``):
``priority``, ``facility``, ``severity`` (ints), ``version`` (5424), ``hostname``, ``appname``,
``procid``, ``msgid`` (5424), ``structured_data`` (5424: ``{sd_id: {param: value}}``) and
``message``. The timestamp becomes ``Parsed.ts``; the level comes from the severity.

RFC 5424 follows influxdata/go-syslog's machine (``rfc5424/machine.go.rl``): PRI 0..191 without
leading zeros, VERSION 1..999, a timestamp with ``T``, upper-case ``Z`` or ``±hh:mm``, at most
6 fraction digits and a real calendar day, header fields of printable US-ASCII up to 255/48/
128/32 characters, SD-IDs and PARAM-NAMEs of up to 32 characters, PARAM-VALUEs in which ``"``,
``\\`` and ``]`` must be escaped (and no other escape is allowed), no duplicate SD-ID. With
``compliant_msg=True`` (go-syslog's ``WithCompliantMsg``) a MSG that starts with a BOM must be
valid UTF-8: the line must then be decoded with ``errors="surrogateescape"`` so that invalid
bytes are visible (lone surrogates); replaced bytes (U+FFFD) cannot be told from real ones.

RFC 3164 accepts what rsyslog, Beats and VRL accept: optional PRI, a ``Mmm dd hh:mm:ss[.frac]``
or RFC 3339 (``T``) timestamp, then ``HOSTNAME TAG: MSG`` where the hostname may be missing
(``Jun 13 16:33:35 haproxy[73411]: ...``) and the tag is optional (a word without a colon is
message text). The year is inferred (see ``parsers.timestamps.parse_syslog3164``).

``lenient=True`` reads what senders really put on the network, as rsyslog's receivers do
(the syslog network input uses it; file lines keep the rules above):

- an RFC 5424 line that breaks the strict grammar (a 9-digit fraction, an over-long field,
  broken structured data) is read field by field instead of refused: the timestamp by
  ``parse_rfc3339`` (``None`` when even that fails), each header field as its word, the
  structured data when it parses, else it stays in the message;
- in RFC 3164, the word after the hostname is the tag with or without a colon
  (``<13>Jan  1 00:00:00 host myapp hello``: rsyslog's ``tag="myapp"`` without a colon);
- a line with a valid ``<PRI>`` and nothing else recognizable is kept as a message with its
  priority (RFC 3164 section 4.3.3: a relay keeps what follows the PRI as the message).

Only a line without a valid ``<PRI>`` and without an RFC 3164 header remains an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any, Final, NoReturn

from parsers._base import Parsed
from parsers.levels import level_from_syslog_severity
from parsers.timestamps import (
    _MONTHS,
    _frac_ns,
    _infer_year_ns,
    _to_ns,
    parse_rfc3339,
    resolve_tz,
)

__all__ = ["SyslogParser"]

_MODES: Final = ("auto", "rfc5424", "rfc3164")
_MAX_PRI: Final = 191
# RFC 5424 section 6: header field lengths.
_MAX_HOSTNAME: Final = 255
_MAX_APPNAME: Final = 48
_MAX_PROCID: Final = 128
_MAX_MSGID: Final = 32
_MAX_SD_NAME: Final = 32
# RFC 3164 says 32 for the tag; real programs (systemd units, Java apps) exceed it, so we take
# up to the 5424 app-name limit and call anything longer message text.
_MAX_TAG: Final = 48
_BOM: Final = "\ufeff"
# Distinct BSD timestamps remembered per parser (a file has one per second at most; the cache
# is also dropped every hour, as the inferred year depends on the clock).
_TS_CACHE_MAX: Final = 4096

_LEVEL_BY_SEVERITY: Final = tuple(level_from_syslog_severity(s) for s in range(8))

# --- RFC 5424 ------------------------------------------------------------------------------

_PRI5424_RE: Final = re.compile(r"<(0|[1-9][0-9]{0,2})>", re.ASCII)
_VERSION_RE: Final = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)
_TS5424_RE: Final = re.compile(
    r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,6}))?"
    r"(?:(Z)|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))",
    re.ASCII,
)
# SD-NAME: printable US-ASCII except '=', SP, ']' and '"'.
_SD_NAME_RE: Final = re.compile(r"[!#-<>-\\^-~]+", re.ASCII)
# PARAM-VALUE body: anything but '"', '\' and ']', or one of the three escaped.
_PARAM_VALUE_RE: Final = re.compile(r'(?:[^"\\\]]|\\["\\\]])*', re.DOTALL)
_UNESCAPE_RE: Final = re.compile(r'\\(["\\\]])')
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
# The common RFC 5424 form in one match: a header of valid fields and no structured data
# ("-"), as rsyslog's RSYSLOG_SyslogProtocol23Format, journald and logger send it. Where it
# matches (and the day exists), the result is ``_parse_5424``'s; anything else goes there.
_FAST5424_RE: Final = re.compile(
    r"<(0|[1-9][0-9]{0,2})>([1-9][0-9]{0,2}) "
    r"(?:-|([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,6}))?"
    r"(?:Z|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))) "
    r"([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) -(?: (.*))?\Z",
    re.DOTALL,
)
# Lenient RFC 5424 (``lenient=True``): the PRI and a version number, then words.
_LENIENT5424_RE: Final = re.compile(r"<([0-9]{1,3})>([0-9]{1,3}) ", re.ASCII)
# Lenient fallback of any line: a valid-looking PRI and the rest.
_PRI_ONLY_RE: Final = re.compile(r"<([0-9]{1,3})>(.*)", re.ASCII | re.DOTALL)


class _Invalid(Exception):
    """Internal: a syntax error at a column, turned into ``Parsed.error`` by ``parse``."""

    def __init__(self, what: str, col: int) -> None:
        super().__init__(what, col)
        self.what = what
        self.col = col


def _header_field(line: str, pos: int, limit: int, what: str) -> tuple[str | None, int]:
    """One of HOSTNAME, APP-NAME, PROCID, MSGID followed by SP: (value or None for '-', pos)."""
    end = line.find(" ", pos)
    if end < 0:
        end = len(line)
        if end == pos or not _printusascii(line[pos:end]) or end - pos > limit:
            raise _Invalid(f"expecting {what} (1 to {limit} printable US-ASCII) or '-'", pos)
        raise _Invalid("expecting a space", end)
    token = line[pos:end]
    if not token or len(token) > limit or not _printusascii(token):
        raise _Invalid(f"expecting {what} (1 to {limit} printable US-ASCII) or '-'", pos)
    return (None if token == "-" else token), end + 1


def _printusascii(token: str) -> bool:
    # Printable ASCII includes the space, which callers have already split on.
    return token.isascii() and token.isprintable()


def _parse_sd(line: str, pos: int) -> tuple[dict[str, dict[str, str]], int]:
    """One or more SD-ELEMENTs starting at ``line[pos] == '['``."""
    n = len(line)
    sd: dict[str, dict[str, str]] = {}
    while pos < n and line[pos] == "[":
        pos += 1
        m = _SD_NAME_RE.match(line, pos)
        if m is None or m.end() - pos > _MAX_SD_NAME:
            raise _Invalid(
                "expecting a structured data element id (1 to 32 printable US-ASCII, "
                "except '=', ' ', ']' and '\"')",
                pos if m is None else pos + _MAX_SD_NAME,
            )
        sd_id = m.group()
        if sd_id in sd:
            raise _Invalid(f"duplicate structured data element id {sd_id!r}", pos)
        params: dict[str, str] = {}
        pos = m.end()
        while True:
            c = line[pos] if pos < n else ""
            if c == "]":
                pos += 1
                break
            if c != " ":
                raise _Invalid("expecting ' ' or ']' in a structured data element", pos)
            pos += 1
            m = _SD_NAME_RE.match(line, pos)
            if m is None or m.end() - pos > _MAX_SD_NAME:
                raise _Invalid(
                    'expecting a structured data parameter (key="value", key 1 to 32 '
                    "printable US-ASCII except '=', ' ', ']' and '\"')",
                    pos if m is None else pos + _MAX_SD_NAME,
                )
            name = m.group()
            pos = m.end()
            if not line.startswith('="', pos):
                raise _Invalid('expecting =" after a structured data parameter name', pos)
            pos += 2
            v = _PARAM_VALUE_RE.match(line, pos)
            end = v.end() if v is not None else pos
            if end >= n or line[end] != '"':
                raise _Invalid(
                    "expecting chars ']', '\"' and '\\' to be escaped within a param value",
                    end,
                )
            raw = line[pos:end]
            if "\\" in raw:
                raw = _UNESCAPE_RE.sub(r"\1", raw)
            if not raw.isascii() and _SURROGATE_RE.search(raw):
                raise _Invalid("a param value must be valid UTF-8", pos)
            params[name] = raw
            pos = end + 1
        sd[sd_id] = params
    return sd, pos


def _parse_5424(line: str, compliant: bool) -> Parsed:
    n = len(line)
    m = _PRI5424_RE.match(line)
    if m is None:
        if not line.startswith("<"):
            raise _Invalid("expecting a priority value within angle brackets", 0)
        raise _Invalid("expecting a priority value in the range 0-191 without leading zeros", 1)
    pri = int(m.group(1))
    if pri > _MAX_PRI:
        raise _Invalid("expecting a priority value in the range 0-191", 1)
    pos = m.end()
    m = _VERSION_RE.match(line, pos)
    if m is None:
        raise _Invalid("expecting a version value in the range 1-999", pos)
    version = int(m.group())
    pos = m.end()
    if pos >= n or line[pos] != " ":
        if pos < n and line[pos].isdigit():
            raise _Invalid("expecting a version value in the range 1-999", pos)
        raise _Invalid("expecting a space after the version", pos)
    pos += 1

    ts: int | None = None
    if line.startswith("-", pos):
        pos += 1
    else:
        m = _TS5424_RE.match(line, pos)
        if m is None:
            raise _Invalid(
                "expecting an RFC 3339 timestamp (at most 6 fraction digits) or '-'", pos
            )
        y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
        off = 0
        if z is None:
            off = int(oh) * 3600 + int(om) * 60
            if sign == "-":
                off = -off
        ts = _to_ns(int(y), int(mo), int(d), int(h), int(mi), int(s), _frac_ns(frac), off)
        if ts is None:
            raise _Invalid(f"timestamp {m.group()!r}: day out of range", m.end())
        pos = m.end()
    if pos >= n or line[pos] != " ":
        raise _Invalid("expecting a space after the timestamp", pos)
    pos += 1

    hostname, pos = _header_field(line, pos, _MAX_HOSTNAME, "a hostname")
    appname, pos = _header_field(line, pos, _MAX_APPNAME, "an app-name")
    procid, pos = _header_field(line, pos, _MAX_PROCID, "a procid")
    msgid, pos = _header_field(line, pos, _MAX_MSGID, "a msgid")

    sd: dict[str, dict[str, str]] | None = None
    c = line[pos] if pos < n else ""
    if c == "-":
        pos += 1
    elif c == "[":
        sd, pos = _parse_sd(line, pos)
    else:
        raise _Invalid("expecting structured data ([id key=\"value\"...]) or '-'", pos)

    message = ""
    if pos < n:
        if line[pos] != " ":
            raise _Invalid("expecting a space before the message", pos)
        message = line[pos + 1 :]
        if (
            compliant
            and message.startswith(_BOM)
            and not message.isascii()
            and _SURROGATE_RE.search(message)
        ):
            raise _Invalid("a message that starts with a BOM must be valid UTF-8", pos + 1)

    fields: dict[str, Any] = {
        "priority": pri,
        "facility": pri >> 3,
        "severity": pri & 7,
        "version": version,
    }
    if hostname is not None:
        fields["hostname"] = hostname
    if appname is not None:
        fields["appname"] = appname
    if procid is not None:
        fields["procid"] = procid
    if msgid is not None:
        fields["msgid"] = msgid
    if sd is not None:
        fields["structured_data"] = sd
    if message:
        fields["message"] = message
    return Parsed(fields=fields, ts=ts, level=_LEVEL_BY_SEVERITY[pri & 7])


def _parse_5424_fast(line: str) -> Parsed | None:
    """``_FAST5424_RE``'s reading of ``line``, or ``None`` for the general path."""
    m = _FAST5424_RE.match(line)
    if m is None:
        return None
    pri_s, version, y, mo, d, h, mi, sec, frac, sign, oh, om, host, app, proc, msgid, msg = (
        m.groups()
    )
    pri = int(pri_s)
    if pri > _MAX_PRI:
        return None
    ts = None
    if y is not None:
        off = 0 if sign is None else (int(oh) * 3600 + int(om) * 60) * (-1 if sign == "-" else 1)
        ts = _to_ns(int(y), int(mo), int(d), int(h), int(mi), int(sec), _frac_ns(frac), off)
        if ts is None:
            return None  # no such day: the general path says so
    fields: dict[str, Any] = {
        "priority": pri,
        "facility": pri >> 3,
        "severity": pri & 7,
        "version": int(version),
    }
    if host != "-":
        fields["hostname"] = host
    if app != "-":
        fields["appname"] = app
    if proc != "-":
        fields["procid"] = proc
    if msgid != "-":
        fields["msgid"] = msgid
    if msg:
        fields["message"] = msg
    return Parsed(fields=fields, ts=ts, level=_LEVEL_BY_SEVERITY[pri & 7])


def _pri_fields(pri: int) -> dict[str, Any]:
    return {"priority": pri, "facility": pri >> 3, "severity": pri & 7}


def _parse_5424_lenient(line: str, tz: tzinfo) -> Parsed | None:
    """``<PRI>VERSION`` and then the header's words as they come (see ``lenient``), or
    ``None`` when the line does not even start like RFC 5424."""
    m = _LENIENT5424_RE.match(line)
    if m is None or int(m.group(1)) > _MAX_PRI:
        return None
    pri = int(m.group(1))
    words = line[m.end() :].split(" ", 5)
    words += [""] * (6 - len(words))
    stamp, hostname, appname, procid, msgid, rest = words
    fields = _pri_fields(pri)
    fields["version"] = int(m.group(2))
    for key, value in (
        ("hostname", hostname),
        ("appname", appname),
        ("procid", procid),
        ("msgid", msgid),
    ):
        if value and value != "-":
            fields[key] = value
    message = rest
    if rest == "-" or rest.startswith("- "):
        message = rest[2:]
    elif rest.startswith("["):
        try:
            sd, pos = _parse_sd(rest, 0)
        except _Invalid:
            pass  # broken structured data stays in the message
        else:
            fields["structured_data"] = sd
            message = rest[pos + 1 :] if rest.startswith(" ", pos) else rest[pos:]
    if message:
        fields["message"] = message
    ts = parse_rfc3339(stamp, default_tz=tz) if stamp and stamp != "-" else None
    return Parsed(fields=fields, ts=ts, level=_LEVEL_BY_SEVERITY[pri & 7])


def _parse_pri_only(line: str) -> Parsed | None:
    """A valid ``<PRI>`` and the rest as the message (RFC 3164 section 4.3.3), or ``None``."""
    m = _PRI_ONLY_RE.match(line)
    if m is None or int(m.group(1)) > _MAX_PRI:
        return None
    pri = int(m.group(1))
    fields = _pri_fields(pri)
    if m.group(2):
        fields["message"] = m.group(2)
    return Parsed(fields=fields, level=_LEVEL_BY_SEVERITY[pri & 7])


# --- RFC 3164 ------------------------------------------------------------------------------

# PRI, then a BSD timestamp (day padded with a space or a zero, or not padded) or an RFC 3339
# one with 'T' (Beats' ``timestamp_rfc3339``), then one or more spaces.
_HEAD3164_RE: Final = re.compile(
    r"(?:<([0-9]{1,3})>)?"
    r"(?:(([A-Za-z]{3}) +([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?)"
    r"|([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?))"
    r" +",
    re.ASCII,
)
# "TAG:" or "TAG[PID]:" as a whole word: the tag is printable without ' ', ':' or '['.
_TAG_RE: Final = re.compile(r"([^\x00-\x20:\[\x7f]{1,48})(?:\[([^\]\x00-\x20]+)\])?:(?: |\Z)")
# The common file form in one match: "[<PRI>]Mmm dd hh:mm:ss HOST TAG[PID]: MSG". HOST may not
# end with ':' (a first word "tag:" means there is no host; the general path decides those).
# Where it matches, the result is the general path's; anything else takes the general path.
_FAST3164_RE: Final = re.compile(
    r"(?:<([0-9]{1,3})>)?"
    r"(([A-Za-z]{3}) +([0-9]{1,2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?) +"
    r"([^ ]{0,254}[^ :]) "
    r"([^\x00-\x20:\[\x7f]{1,48})(?:\[([^\]\x00-\x20]+)\])?:(?: |\Z)"
    r"(.*)",
    re.DOTALL,
)
# ``lenient``: the word after the hostname is the tag even without a colon (rsyslog's reading).
_BARE_TAG_RE: Final = re.compile(r"([^\x00-\x20:\[\x7f]{1,48})(?:\[([^\]\x00-\x20]+)\])?(?: |\Z)")
# After "<PRI>": a 4-digit year and '-' is an RFC 3164 line with an RFC 3339 timestamp.
_YEAR_RE: Final = re.compile(r"[0-9]{4}-", re.ASCII)


class SyslogParser:
    """Parse syslog lines (RFC 5424 and RFC 3164), see the module docstring.

    Options: ``tz`` (zone name or tzinfo, default UTC) for timestamps without a zone;
    ``now_ns`` (a clock, default ``time.time_ns``) to infer RFC 3164 years; ``mode`` one of
    ``"auto"`` (by the text after PRI: a version number means 5424), ``"rfc5424"`` or
    ``"rfc3164"``; ``compliant_msg`` as go-syslog's ``WithCompliantMsg``; ``lenient`` to read
    what senders put on the network (see the module docstring).
    """

    name = "syslog"

    def __init__(
        self,
        *,
        tz: str | tzinfo = UTC,
        now_ns: Callable[[], int] = time.time_ns,
        mode: str = "auto",
        compliant_msg: bool = False,
        lenient: bool = False,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"syslog mode must be one of {', '.join(_MODES)}, got {mode!r}")
        self._tz = resolve_tz(tz)
        self._now_ns = now_ns
        self._mode = mode
        self._compliant = bool(compliant_msg)
        self._lenient = bool(lenient)
        # BSD timestamp text -> ns, valid while "now" stays in the same hour (the year
        # inference depends on now). Lines in a file share their timestamps a lot.
        self._ts_cache: dict[str, int | None] = {}
        self._ts_cache_hour = -1

    def parse(self, line: str) -> Parsed:
        """Parse one syslog line; an invalid line gets no fields and an error with a column."""
        mode = self._mode
        rfc5424 = mode == "rfc5424"
        try:
            if mode == "auto" and line.startswith("<"):
                gt = line.find(">", 1, 6)
                rfc5424 = (
                    gt > 0
                    and "0" <= line[gt + 1 : gt + 2] <= "9"
                    and not _YEAR_RE.match(line, gt + 1)
                )
            if rfc5424:
                if not self._compliant:
                    fast = _parse_5424_fast(line)
                    if fast is not None:
                        return fast
                return _parse_5424(line, self._compliant)
            return self._parse_3164(line)
        except _Invalid as exc:
            if self._lenient:
                got = _parse_5424_lenient(line, self._tz) if rfc5424 else None
                got = got or _parse_pri_only(line)
                if got is not None:
                    return got
            return Parsed(error=f"syslog: {exc.what} at column {exc.col}")

    def _parse_3164(self, line: str) -> Parsed:
        f = _FAST3164_RE.match(line)
        if f is not None:
            pri_s, bsd, mon, day, hh, mi, ss, frac, host, app, pid, msg = f.groups()
            ts = self._bsd_ts(bsd, mon, day, hh, mi, ss, frac)
            if ts is not None and (pri_s is None or int(pri_s) <= _MAX_PRI):
                if pid is None:
                    fields: dict[str, Any] = {"hostname": host, "appname": app, "message": msg}
                else:
                    fields = {"hostname": host, "appname": app, "procid": pid, "message": msg}
                if pri_s is None:
                    return Parsed(fields=fields, ts=ts)
                pri = int(pri_s)
                return Parsed(
                    fields={"priority": pri, "facility": pri >> 3, "severity": pri & 7, **fields},
                    ts=ts,
                    level=_LEVEL_BY_SEVERITY[pri & 7],
                )
        return self._parse_3164_general(line)

    def _parse_3164_general(self, line: str) -> Parsed:
        m = _HEAD3164_RE.match(line)
        if m is None:
            self._explain_3164(line)
        pri_s, bsd, mon, day, hh, mi, ss, frac, iso = m.groups()
        fields: dict[str, Any] = {}
        level = None
        if pri_s is not None:
            pri = int(pri_s)
            if pri > _MAX_PRI:
                raise _Invalid("expecting a priority value in the range 0-191", 1)
            fields["priority"] = pri
            fields["facility"] = pri >> 3
            fields["severity"] = pri & 7
            level = _LEVEL_BY_SEVERITY[pri & 7]
        if iso is not None:
            ts = parse_rfc3339(iso, default_tz=self._tz)
            if ts is None:
                raise _Invalid(f"invalid RFC 3339 timestamp {iso!r}", m.start(9))
        else:
            ts = self._bsd_ts(bsd, mon, day, hh, mi, ss, frac)
            if ts is None:
                raise _Invalid(f"invalid timestamp {bsd!r}", m.start(2))

        pos = m.end()
        t = _TAG_RE.match(line, pos)
        if t is not None:
            # The first word is "tag:" or "tag[pid]:": the hostname is missing.
            self._set_tag(fields, t)
            fields["message"] = line[t.end() :]
            return Parsed(fields=fields, ts=ts, level=level)
        end = line.find(" ", pos)
        if end < 0:
            end = len(line)
        if end == pos:
            raise _Invalid("expecting a hostname", pos)
        if end - pos > _MAX_HOSTNAME:
            raise _Invalid(f"hostname longer than {_MAX_HOSTNAME} characters", pos)
        fields["hostname"] = line[pos:end]
        pos = end + 1
        if pos < len(line):
            t = _TAG_RE.match(line, pos)
            if t is None and self._lenient:
                t = _BARE_TAG_RE.match(line, pos)
            if t is not None:
                self._set_tag(fields, t)
                pos = t.end()
            fields["message"] = line[pos:]
        return Parsed(fields=fields, ts=ts, level=level)

    @staticmethod
    def _set_tag(fields: dict[str, Any], t: re.Match[str]) -> None:
        fields["appname"] = t.group(1)
        pid = t.group(2)
        if pid is not None:
            fields["procid"] = pid

    def _bsd_ts(
        self, text: str, mon: str, day: str, hh: str, mi: str, ss: str, frac: str | None
    ) -> int | None:
        now = self._now_ns()
        hour = now // 3_600_000_000_000
        cache = self._ts_cache
        if hour != self._ts_cache_hour or len(cache) >= _TS_CACHE_MAX:
            cache.clear()
            self._ts_cache_hour = hour
        try:
            return cache[text]
        except KeyError:
            pass
        month = _MONTHS.get(mon)
        ts = None
        if month is not None:
            ts = _infer_year_ns(
                month, int(day), int(hh), int(mi), int(ss), _frac_ns(frac), now, self._tz
            )
        cache[text] = ts
        return ts

    @staticmethod
    def _explain_3164(line: str) -> NoReturn:
        """Why a line is not RFC 3164, as precisely as a cheap look allows."""
        pos = 0
        if line.startswith("<"):
            gt = line.find(">")
            pri = line[1:gt] if gt > 0 else ""
            if not (pri.isascii() and pri.isdigit() and len(pri) <= 3):
                raise _Invalid("expecting a priority value in the range 0-191", 1)
            pos = gt + 1
        raise _Invalid("expecting a timestamp (Mmm dd hh:mm:ss or RFC 3339)", pos)
