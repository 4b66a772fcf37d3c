"""The CLF / combined parser against VRL's vectors and a real Apache log.

Vectors: ``../shared/data/vectors/clf.jsonl``, the ``parse_common_log`` and ``parse_apache_log``
(formats ``common``/``combined``) cases of vectordotdev/vrl @ eae43fef
(``src/stdlib/parse_common_log.rs``, ``src/stdlib/parse_apache_log.rs``; MPL-2.0).
Log: ``../shared/data/logs/apache_combined.log``, elastic/examples @ 6d86454e
(``Common Data Formats/apache_logs/apache_logs``; Apache-2.0).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parsers import Parsed, get_parser
from parsers.clf import _FAST_PATTERNS, ClfParser
from tests.parsers._vectors import LOGS_DIR, load_cases, params

_ISO_RE = re.compile(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def expected_ns(value: dict[str, str]) -> int:
    """A vector's ``{"$timestamp": "2021-06-04T15:40:27.000138633Z"}`` in nanoseconds, computed
    without Wharf's own timestamp code (whole seconds by ``datetime``, the fraction by hand)."""
    m = _ISO_RE.fullmatch(value["$timestamp"])
    assert m is not None, value
    seconds, fraction, zone = m.groups()
    zone = "+00:00" if zone == "Z" else zone
    whole = int(datetime.fromisoformat(seconds + zone).timestamp())
    return whole * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def check_fields(parsed: Parsed, expected: dict[str, Any]) -> None:
    """VRL's expected object: ``timestamp`` is our ``ts``, everything else is a field."""
    expected = dict(expected)
    timestamp = expected.pop("timestamp", None)
    assert parsed.error is None, parsed.error
    assert parsed.fields == expected
    assert parsed.ts == (None if timestamp is None else expected_ns(timestamp))


def _is_clf_case(case: dict[str, Any]) -> bool:
    functions = ("parse_common_log", "parse_apache_log")
    return case["function"] in functions and case["format"] in ("common", "combined")


def _options(case: dict[str, Any]) -> dict[str, Any]:
    options = dict(case["options"] or {})
    unknown = set(options) - {"timestamp_format"}
    assert not unknown, f"vector option not mapped: {unknown}"
    return options


@pytest.mark.parametrize("case", params("clf", where=_is_clf_case))
def test_vector(case: dict[str, Any]) -> None:
    parser = ClfParser(case["format"], **_options(case))
    parsed = parser.parse(case["input"])
    if case["valid"]:
        check_fields(parsed, case["expected"])
    else:
        assert parsed.error is not None
        assert parsed.fields == {}
        assert parsed.ts is None


@pytest.mark.parametrize(
    "case", params("clf", where=lambda case: _is_clf_case(case) and not case["options"])
)
def test_vector_auto(case: dict[str, Any]) -> None:
    """``auto`` reads common and combined lines alike, as the named format does (cases with
    the default time format)."""
    parsed = ClfParser().parse(case["input"])
    if case["valid"]:
        check_fields(parsed, case["expected"])
    else:
        assert parsed.error is not None


def test_registry() -> None:
    parser = get_parser("clf", format="combined")
    assert isinstance(parser, ClfParser)
    assert parser.name == "clf"
    with pytest.raises(ValueError, match="unknown clf format 'nope'"):
        ClfParser("nope")  # type: ignore[arg-type]


def test_apache_combined_log() -> None:
    """10,000 real lines: at least 99% give fields, none raises, times land in May 2015."""
    parser = ClfParser("combined")
    lines = (LOGS_DIR / "apache_combined.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10_000
    results = [parser.parse(line) for line in lines]
    good = [r for r in results if r.error is None]
    assert len(good) >= 0.99 * len(lines)
    may_2015 = expected_ns({"$timestamp": "2015-05-01T00:00:00Z"})
    june_2015 = expected_ns({"$timestamp": "2015-06-01T00:00:00Z"})
    for r in good:
        assert r.ts is not None and may_2015 <= r.ts < june_2015
        assert {"host", "message", "status"} <= r.fields.keys()
    first = results[0]
    assert first.fields == {
        "host": "83.149.9.216",
        "message": "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1",
        "method": "GET",
        "path": "/presentations/logstash-monitorama-2013/images/kibana-search.png",
        "protocol": "HTTP/1.1",
        "status": 200,
        "size": 203023,
        "referrer": "http://semicomplete.com/presentations/logstash-monitorama-2013/",
        "agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36",
    }
    assert first.ts == expected_ns({"$timestamp": "2015-05-17T10:05:03Z"})


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        # Apache escapes a quote in the request as \"; the general path reads it.
        (
            r'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /a\"b HTTP/1.0" 200 5 "-" "x\"y"',
            {
                "host": "1.2.3.4",
                "message": r"GET /a\"b HTTP/1.0",
                "method": "GET",
                "path": r"/a\"b",
                "protocol": "HTTP/1.0",
                "status": 200,
                "size": 5,
                "agent": r"x\"y",
            },
        ),
        # A user name with a blank (Apache does not escape it).
        (
            '1.2.3.4 - john doe [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 -',
            {
                "host": "1.2.3.4",
                "user": "john doe",
                "message": "GET / HTTP/1.0",
                "method": "GET",
                "path": "/",
                "protocol": "HTTP/1.0",
                "status": 200,
            },
        ),
        # A scanner's request line: no method/path/protocol, only the message.
        (
            '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "\\x16\\x03\\x01" 400 0 "-" "-"',
            {"host": "1.2.3.4", "message": "\\x16\\x03\\x01", "status": 400, "size": 0},
        ),
        # nginx's "main" appends "$http_x_forwarded_for": still combined.
        (
            '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "curl" "5.6.7.8"',
            {
                "host": "1.2.3.4",
                "message": "GET / HTTP/1.1",
                "method": "GET",
                "path": "/",
                "protocol": "HTTP/1.1",
                "status": 200,
                "size": 1,
                "agent": "curl",
            },
        ),
    ],
)
def test_shapes(line: str, fields: dict[str, Any]) -> None:
    parsed = ClfParser().parse(line)
    assert parsed.error is None
    assert parsed.fields == fields
    assert parsed.ts == expected_ns({"$timestamp": "2000-10-10T20:55:36Z"})


def test_common_rejects_trailing_fields() -> None:
    line = '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 "-" "agent"'
    assert ClfParser("common").parse(line).error is not None
    assert ClfParser("combined").parse(line).error is None
    assert ClfParser("combined").parse(line[: line.index(' "-"')]).error is not None


@pytest.mark.parametrize(
    "time",
    [
        "32/Oct/2000:13:55:36 -0700",
        "10/Foo/2000:13:55:36 -0700",
        "10/Oct/2000:24:00:00 +0000",
        "10/Oct/2000:13:60:00 +0000",
        "10/Oct/2000:13:55:61 +0000",
        "10/Oct/2000:13:55:36 +2500",
    ],
)
def test_bad_times_fail_the_line(time: str) -> None:
    parsed = ClfParser().parse(f'1.2.3.4 - - [{time}] "GET / HTTP/1.0" 200 5')
    assert parsed.error is not None and parsed.fields == {}


def test_leap_second_and_other_time_shapes() -> None:
    parser = ClfParser()
    line = '1.2.3.4 - - [{}] "GET / HTTP/1.0" 200 5'
    assert parser.parse(line.format("31/Dec/2016:23:59:60 +0000")).ts == expected_ns(
        {"$timestamp": "2017-01-01T00:00:00Z"}
    )
    assert parser.parse(line.format("1/Oct/2000:13:55:36.25 -0700")).ts == expected_ns(
        {"$timestamp": "2000-10-01T20:55:36.25Z"}
    )
    assert parser.parse(line.format("2000-10-10T20:55:36Z")).ts == expected_ns(
        {"$timestamp": "2000-10-10T20:55:36Z"}
    )


# Lines in (and near) the shape the fast path takes: the fast path must agree with the
# general regex wherever it answers. Good values are repeated so about half the lines are
# well-formed and the fast path answers often.
def _mostly(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(good * 3 + bad)


_TOKEN = _mostly(["-", "1.2.3.4", "bob"], ["a\tb", "x y", "", "é", "\\", '"', "[x]", "-x"])
_TIME = st.builds(
    "{:02d}/{}/{:04d}:{:02d}:{:02d}:{:02d} {}{:02d}{:02d}".format,
    st.one_of(st.integers(1, 28), st.integers(0, 39)),
    _mostly(["Jan", "Feb", "Oct"], ["Foo", "oct", "OCT"]),
    st.integers(1999, 2001),
    st.one_of(st.integers(0, 23), st.integers(0, 30)),
    st.one_of(st.integers(0, 59), st.integers(0, 65)),
    st.one_of(st.integers(0, 59), st.integers(0, 65)),
    st.sampled_from(["+", "-"]),
    st.one_of(st.integers(0, 14), st.integers(0, 26)),
    st.one_of(st.sampled_from([0, 30]), st.integers(0, 61)),
)
_QUOTED = _mostly(
    ["GET / HTTP/1.1", "POST /x?y=1 HTTP/1.0", "Mozilla/5.0 (X11)", "-"],
    ["", 'GET /a\\"b HTTP/1.0', " GET  /x HTTP/1.1 ", "a b", "x\\", "G_T / H", "é / x"],
)
_NUMBER = _mostly(["200", "-", "0", "1234"], ["12x", "٣", ""])


@st.composite
def _clf_like(draw: st.DrawFn) -> str:
    sep = draw(_mostly([" "], ["  ", "\t"]))
    parts = [
        draw(_TOKEN) or "h",
        draw(_TOKEN) or "-",
        draw(_TOKEN) or "-",
        "[" + draw(_TIME) + "]",
        '"' + draw(_QUOTED) + '"',
        draw(_NUMBER),
        draw(_NUMBER),
    ]
    if draw(st.booleans()):
        parts += ['"' + draw(_QUOTED) + '"', '"' + draw(_QUOTED) + '"']
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(['"1.2.3.4"', "extra", ""])))
    return sep.join(parts) + draw(_mostly([""], [" ", "x"]))


@settings(max_examples=500)
@given(line=_clf_like(), fmt=st.sampled_from(["auto", "common", "combined"]))
@example(line='h - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5', fmt="auto")
def test_fast_path_agrees_with_general_path(line: str, fmt: Any) -> None:
    parser = ClfParser(fmt)
    general = parser._parse_general(line)
    m = _FAST_PATTERNS[fmt].match(line)
    if m is not None:
        fast = parser._parse_fast(m.groups())
        if fast is not None:
            assert fast == general
    assert parser.parse(line) == general


def test_every_clf_vector_is_run_somewhere() -> None:
    """clf.jsonl is split between three test files (CLF here, nginx, Apache error): each case
    falls in exactly one of them, so none is left out silently."""
    # Imported here: both modules import check_fields from this one (a cycle at import time).
    from tests.parsers.test_apache_error import _is_error_case  # noqa: PLC0415
    from tests.parsers.test_nginx import _is_nginx_case  # noqa: PLC0415

    for case in load_cases("clf"):
        homes = [_is_clf_case(case), _is_nginx_case(case), _is_error_case(case)]
        assert sum(homes) == 1, case["id"]
