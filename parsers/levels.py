"""Severity normalization: the many spellings of a log level, mapped onto ``parsers.LEVELS``.

Mapping decisions:

- ``NOTICE`` (syslog 5) and ``INFORMATION``/``INFORMATIONAL`` are ``info``.
- ``CRIT``/``CRITICAL``, ``ALERT``, ``EMERG``/``EMERGENCY``, ``FATAL`` and ``PANIC`` are all
  ``fatal``: each names a severity above "error" (syslog 0-2, Python's ``CRITICAL`` which is
  its ``FATAL``, log4j ``FATAL``, Go's ``panic``), and an operator filtering ``level=fatal``
  wants all of them, while keeping ``error`` for the ordinary failures (syslog 3).
- ``SEVERE`` (java.util.logging) is ``error``; ``FINE``/``FINER``/``FINEST`` are ``debug``,
  ``debug`` and ``trace``; ``VERBOSE`` is ``debug``.
- One-letter forms (``E``, ``W``, ``I``, ``D``, ``V``, ``F``, ``T``; glog, Android logcat) are
  accepted as field values but never searched for in free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "level_from_fields",
    "level_from_syslog_severity",
    "level_from_text",
    "normalize_level",
]

_SPELLINGS: Final[dict[str, str]] = {
    "trace": "trace",
    "trc": "trace",
    "finest": "trace",
    "t": "trace",
    "debug": "debug",
    "dbg": "debug",
    "debu": "debug",
    "fine": "debug",
    "finer": "debug",
    "verbose": "debug",
    "d": "debug",
    "v": "debug",
    "info": "info",
    "inf": "info",
    "infor": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "note": "info",
    "i": "info",
    "n": "info",
    "warn": "warn",
    "warning": "warn",
    "wrn": "warn",
    "warni": "warn",
    "w": "warn",
    "err": "error",
    "eror": "error",
    "erro": "error",
    "error": "error",
    "severe": "error",
    "e": "error",
    "crit": "fatal",
    "critical": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "fatal": "fatal",
    "fata": "fatal",
    "ftl": "fatal",
    "panic": "fatal",
    "dpanic": "fatal",
    "f": "fatal",
    "a": "fatal",
    "c": "fatal",
}
# Longest spelling above; anything longer is not a level (and is not lowercased for nothing).
_MAX_SPELLING: Final = max(map(len, _SPELLINGS))

# Syslog severities 0..7 (RFC 5424 section 6.2.1): emerg, alert, crit, err, warning, notice,
# info, debug.
_SYSLOG: Final = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")


def normalize_level(text: str) -> str | None:
    """Map a level spelling (any case, surrounding spaces ignored) to one of ``LEVELS``.

    Returns ``None`` for text that is not a known level.
    """
    if len(text) > _MAX_SPELLING + 2:
        return None
    level = _SPELLINGS.get(text)
    if level is None:
        level = _SPELLINGS.get(text.strip().lower())
    return level


def level_from_syslog_severity(sev: int) -> str:
    """The level of a syslog severity 0..7 (0-2 are ``fatal``, 5 notice is ``info``).

    Raises ``ValueError`` outside 0..7: a parser validates the priority before calling this.
    """
    if not 0 <= sev <= 7:
        raise ValueError(f"syslog severity must be 0..7, got {sev}")
    return _SYSLOG[sev]


def _from_number(key: str, value: int) -> str | None:
    if key in {"severity_number", "SeverityNumber", "severityNumber"}:
        # OpenTelemetry: 1-4 trace, 5-8 debug, 9-12 info, 13-16 warn, 17-20 error, 21-24 fatal.
        if 1 <= value <= 24:
            return ("trace", "debug", "info", "warn", "error", "fatal")[(value - 1) // 4]
        return None
    if key in {"severity", "syslog_severity"}:
        return _SYSLOG[value] if 0 <= value <= 7 else None
    # pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
    if value in {10, 20, 30, 40, 50, 60}:
        return ("trace", "debug", "info", "warn", "error", "fatal")[value // 10 - 1]
    return None


# Keys tried in order; the first one present with a recognizable value wins.
_LEVEL_KEYS: Final = (
    "level",
    "lvl",
    "severity",
    "log.level",
    "loglevel",
    "log_level",
    "levelname",
    "level_name",
    "severity_text",
    "SeverityText",
    "severityText",
    "severity_number",
    "SeverityNumber",
    "@l",
    "Level",
    "LEVEL",
    "Severity",
    "syslog_severity",
)


def level_from_fields(fields: Mapping[str, Any]) -> str | None:
    """The level named by a record's fields (``level``, ``lvl``, ``severity``, ``log.level``
    either as a dotted key or nested ``{"log": {"level": ...}}``, ``loglevel``, Python's
    ``levelname``, OpenTelemetry's ``severity_text``/``severity_number``, Serilog's ``@l``, ...).

    String values go through ``normalize_level``; integers are read as pino/bunyan levels
    (10..60), syslog severities (key ``severity``) or OpenTelemetry severity numbers.
    """
    # Fast path: most structured logs say "level": "info".
    value = fields.get("level")
    if value.__class__ is str:
        level = _SPELLINGS.get(value)
        if level is not None:
            return level
    for key in _LEVEL_KEYS:
        value = fields.get(key)
        if value is None:
            continue
        level = _value_level(key, value)
        if level is not None:
            return level
    log = fields.get("log")
    if isinstance(log, Mapping):
        value = log.get("level")
        if value is not None:
            return _value_level("log.level", value)
    return None


def _value_level(key: str, value: Any) -> str | None:
    if isinstance(value, str):
        return normalize_level(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _from_number(key, value)
    return None


# Upper-case level words, anywhere in the first _SCAN_CHARS characters, as whole words; plus
# any-case words when bracketed ("[warn]", "<error>") as nginx, Apache and many apps write
# them, also after a module name ("[core:error]", Apache 2.4); plus glog/klog's one-letter
# prefix ("E0102 15:04:05.123456 ..."). Lower-case bare words are not taken: "info" and
# "error" are common in message text ("user info", "no error").
_SCAN_CHARS: Final = 96
_TEXT_RE: Final = re.compile(
    r"(?<![A-Za-z0-9_])"
    r"(TRACE|DEBUG|INFO|INFORMATION|NOTICE|WARN|WARNING|ERR|ERROR|SEVERE|CRIT|CRITICAL"
    r"|ALERT|EMERG|EMERGENCY|FATAL|PANIC)"
    r"(?![A-Za-z0-9_])"
    r"|[\[<(](?:[A-Za-z0-9_]{1,32}:)?((?i:trace|debug|info|notice|warn|warning|err|error|crit"
    r"|critical|alert|emerg"
    r"|fatal|panic))[\]>)]"
    r"|^([IWEF])\d{4} \d\d:\d\d:\d\d",
    re.ASCII,
)
_GLOG: Final = {"I": "info", "W": "warn", "E": "error", "F": "fatal"}


def level_from_text(line: str) -> str | None:
    """A level word near the start of an unstructured line, or ``None``.

    Looks in the first 96 characters for an upper-case level word (``ERROR``, ``WARN``,
    ...), a bracketed level in any case (``[error]``, ``<warn>``), or a glog prefix (``E0102``).
    """
    m = _TEXT_RE.search(line, 0, _SCAN_CHARS)
    if m is None:
        return None
    word = m.group(1) or m.group(2)
    if word is not None:
        return _SPELLINGS.get(word.lower())
    return _GLOG[m.group(3)]
