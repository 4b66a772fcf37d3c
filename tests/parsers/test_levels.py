"""Level normalization."""

from __future__ import annotations

import pytest

from parsers import LEVELS
from parsers.levels import (
    level_from_fields,
    level_from_syslog_severity,
    level_from_text,
    normalize_level,
)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("TRACE", "trace"),
        ("debug", "debug"),
        ("Info", "info"),
        ("INFORMATION", "info"),
        ("informational", "info"),
        ("NOTICE", "info"),
        ("WARN", "warn"),
        ("warning", "warn"),
        ("ERR", "error"),
        ("Error", "error"),
        ("SEVERE", "error"),
        ("CRIT", "fatal"),
        ("critical", "fatal"),
        ("ALERT", "fatal"),
        ("EMERG", "fatal"),
        ("emergency", "fatal"),
        ("FATAL", "fatal"),
        ("panic", "fatal"),
        (" warn ", "warn"),
        ("E", "error"),
        ("verbose", "debug"),
        ("", None),
        ("information overload", None),
        ("ok", None),
        ("x" * 10_000, None),
    ],
)
def test_normalize_level(text: str, level: str | None) -> None:
    assert normalize_level(text) == level
    assert level is None or level in LEVELS


def test_syslog_severities() -> None:
    assert [level_from_syslog_severity(s) for s in range(8)] == [
        "fatal",
        "fatal",
        "fatal",
        "error",
        "warn",
        "info",
        "info",
        "debug",
    ]
    for bad in (-1, 8):
        with pytest.raises(ValueError, match=r"0\.\.7"):
            level_from_syslog_severity(bad)


@pytest.mark.parametrize(
    ("fields", "level"),
    [
        ({"level": "info"}, "info"),
        ({"lvl": "eror"}, "error"),
        ({"severity": "WARNING"}, "warn"),
        ({"severity": 3}, "error"),  # a number under "severity" is a syslog severity
        ({"log.level": "debug"}, "debug"),
        ({"log": {"level": "crit"}}, "fatal"),
        ({"loglevel": "TRACE"}, "trace"),
        ({"levelname": "WARNING"}, "warn"),
        ({"level": 30}, "info"),  # pino / bunyan
        ({"level": 60}, "fatal"),
        ({"severity_number": 17}, "error"),  # OpenTelemetry
        ({"SeverityText": "Information"}, "info"),
        ({"@l": "Warning"}, "warn"),  # Serilog CLEF
        ({"level": "nonsense", "severity": "error"}, "error"),  # first recognizable wins
        ({"level": True}, None),
        ({"level": 35}, None),
        ({"msg": "error"}, None),
        ({}, None),
    ],
)
def test_level_from_fields(fields: dict[str, object], level: str | None) -> None:
    assert level_from_fields(fields) == level


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("[2016-12-19 18:01:53,612] TRACE [Controller 0]: checking", "trace"),
        ("2024-01-02 03:04:05,678 WARNING root: disk", "warn"),
        ("WARNING:root:disk is full", "warn"),
        ("2024/01/02 03:04:05 [error] 12#0: *1 open() failed", "error"),
        ("[Tue Jun 08 11:54:08 2021] [php7:emerg] [pid 1]", "fatal"),
        ("<warn> something", "warn"),
        ("E0102 15:04:05.123456    1 main.go:12] boom", "error"),
        ("I0102 15:04:05.123456    1 main.go:12] ok", "info"),
        ("Failed password for invalid user info from 1.2.3.4", None),
        ("no error here", None),
        ("ERRORS were found", None),  # whole words only
        ("x" * 200 + " ERROR", None),  # only near the start
        ("", None),
    ],
)
def test_level_from_text(line: str, level: str | None) -> None:
    assert level_from_text(line) == level
