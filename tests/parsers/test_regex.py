"""The user-configured regex parser."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from parsers import get_parser
from parsers.regex import RegexParser
from tests.parsers.test_clf import expected_ns

_LOG4J = (
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) (?P<level>\w+) +"
    r"\[(?P<thread>[^\]]+)\] (?P<logger>\S+) - (?P<message>.*)$"
)


def test_named_groups_become_fields() -> None:
    parser = RegexParser(_LOG4J, time_key="time", time_format="%Y-%m-%d %H:%M:%S,%f")
    parsed = parser.parse("2024-01-02 03:04:05,678 WARN  [main] com.example.App - disk at 91%")
    assert parsed.error is None
    assert parsed.fields == {
        "level": "WARN",
        "thread": "main",
        "logger": "com.example.App",
        "message": "disk at 91%",
    }
    assert parsed.ts == expected_ns({"$timestamp": "2024-01-02T03:04:05.678Z"})
    assert parsed.level == "warn"


def test_no_match_is_an_error() -> None:
    parsed = RegexParser(_LOG4J).parse("something else entirely")
    assert parsed.error == "line does not match the regex parser's pattern"
    assert parsed.fields == {} and parsed.ts is None


def test_search_unanchored_and_optional_groups() -> None:
    parser = RegexParser(r"user=(?P<user>\w+)(?: id=(?P<id>\d+))?")
    assert parser.parse("login ok user=ann").fields == {"user": "ann"}
    assert parser.parse("x user=bob id=7 y").fields == {"user": "bob", "id": "7"}
    assert parser.parse("x user=bob").level is None


def test_time_defaults_zone_and_bad_time() -> None:
    parser = RegexParser(r"^(?P<t>\S+) (?P<msg>.*)$", time_key="t")
    assert parser.parse("2024-01-02T03:04:05Z hi").ts == expected_ns(
        {"$timestamp": "2024-01-02T03:04:05Z"}
    )
    parsed = parser.parse("yesterday hi")
    # A time that does not parse stays in the fields; the caller uses the read time.
    assert parsed.error is None and parsed.ts is None
    assert parsed.fields == {"t": "yesterday", "msg": "hi"}
    zoned = RegexParser(
        r"^(?P<t>\S+ \S+)",
        time_key="t",
        time_format="%Y-%m-%d %H:%M:%S",
        tz=timezone(timedelta(hours=-5)),
    )
    assert zoned.parse("2024-01-02 03:04:05").ts == expected_ns(
        {"$timestamp": "2024-01-02T08:04:05Z"}
    )


def test_custom_level_key() -> None:
    parser = RegexParser(r"^<(?P<sev>\w+)> (?P<msg>.*)", level_key="sev")
    assert parser.parse("<ERR> boom").level == "error"
    assert RegexParser(r"^<(?P<sev>\w+)>", level_key=None).parse("<ERR>").level is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "(?P<a>x"}, r"pattern '\(\?P<a>x' does not compile: missing \)"),
        ({"pattern": "(?P<1a>x)"}, "does not compile: bad character in group name"),
        ({"pattern": "[a-"}, r"pattern '\[a-' does not compile: unterminated character set"),
        ({"pattern": "a+b"}, "pattern 'a\\+b' has no named group"),
        ({"pattern": "(?P<a>x)", "time_key": "t"}, "time_key 't' is not a named group"),
        ({"pattern": "(?P<a>x)", "time_format": "%Y"}, "time_format '%Y' given without time_key"),
        (
            {"pattern": "(?P<a>x)", "time_key": "a", "time_format": "%Q"},
            "time_format '%Q' \\(pattern '\\(\\?P<a>x\\)'\\): unsupported directive %Q",
        ),
        ({"pattern": "(?P<a>x)", "level_key": "lvl"}, "level_key 'lvl' is not a named group"),
    ],
)
def test_bad_configuration_is_a_clear_value_error(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RegexParser(**kwargs)  # type: ignore[arg-type]


def test_registry() -> None:
    parser = get_parser("regex", pattern=r"(?P<word>\w+)")
    assert parser.parse("hello world").fields == {"word": "hello"}
