"""Arbitrary text into every parser and timestamp function here: a result, never an exception.

Text includes lone surrogates (what ``surrogateescape`` decoding makes of invalid UTF-8) and
grammar-heavy alphabets, so that the interesting paths are reached, not just the first check.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import LEVELS, Parsed, get_parser
from parsers import timestamps as T
from parsers.logfmt import LogfmtParser, LogfmtSyntaxError, _scan_exact
from parsers.syslog import SyslogParser

NOW_NS = 1_718_409_600 * 10**9

PARSERS: list[Any] = [
    get_parser("raw"),
    get_parser("json"),
    get_parser("logfmt"),
    get_parser("logfmt", max_line_bytes=8),
    get_parser("auto", now_ns=lambda: NOW_NS),
    *(
        SyslogParser(mode=mode, compliant_msg=compliant, now_ns=lambda: NOW_NS)
        for mode in ("auto", "rfc5424", "rfc3164")
        for compliant in (False, True)
    ),
]

# Text shaped like the formats, so the fuzzer gets past the first character.
_PIECES = st.sampled_from(
    [
        "<",
        ">",
        "<13>",
        "<165>1 ",
        "1 ",
        "- ",
        "2003-10-11T22:14:15.003Z ",
        "2003-02-31T22:14:15Z",
        "Oct 11 22:14:15 ",
        "Feb 29 ",
        "host ",
        "app[12]: ",
        '[id a="b\\]"]',
        "[",
        "]",
        '"',
        "\\",
        "=",
        "k=v ",
        'k="a\\u00e9\\ud83d" ',
        "{",
        "}",
        '{"ts":',
        "1700000000",
        '"level":"warn"',
        ",",
        ":",
        " ",
        "\t",
        "\x00",
        "\ufeff",
        "\ufffd",
        "\udcff",
        "\ud800",
        "é",
        "10/Oct/2000:13:55:36 -0700",
        "1.2.3.4 - - [",
        "[2016-12-19 18:01:53,612] ",
        "ERROR ",
        "9" * 30,
        "060 ",
        "12AM",
    ]
)
TEXT = st.one_of(st.text(), st.lists(_PIECES, max_size=20).map("".join))


def _check(got: Parsed) -> None:
    assert isinstance(got, Parsed)
    assert isinstance(got.fields, dict)
    assert got.level is None or got.level in LEVELS
    assert got.ts is None or (isinstance(got.ts, int) and -(2**63) <= got.ts < 2**63)
    if got.error is not None:
        assert isinstance(got.error, str)
        assert got.error
        assert got.fields == {}


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_parsers_never_raise(line: str) -> None:
    for parser in PARSERS:
        _check(parser.parse(line))


@settings(max_examples=400)
@given(TEXT)
def test_logfmt_fast_fields_equal_exact_scan(line: str) -> None:
    """The parser's C-built fields are exactly go-logfmt's pairs (last value of a key wins)."""
    try:
        want: Any = dict(_scan_exact(line))
    except LogfmtSyntaxError:
        want = None
    got = LogfmtParser().parse(line)
    if want is None:
        assert got.error is not None
    else:
        assert got.fields == want


@settings(max_examples=400)
@given(TEXT, st.sampled_from(["UTC", "Europe/Berlin", "America/St_Johns"]))
def test_timestamp_functions_never_raise(text: str, zone: str) -> None:
    tz = SyslogParser(tz=zone)._tz
    results = [
        T.parse_rfc3339(text),
        T.parse_rfc3339(text, default_tz=tz),
        T.parse_clf(text),
        T.parse_syslog3164(text, now_ns=NOW_NS, tz=tz),
        T.parse_log4j(text, tz=tz),
        T.parse_epoch(text),
        T.parse_any(text, tz=tz),
        T.compile_format("%Y-%m-%d %H:%M:%S.%f%z")(text),
        T.compile_format("%b %e %T")(text),
        T.compile_format("%s.%f")(text),
        T.compile_format("%y%j %I%p %Z")(text),
    ]
    for r in results:
        assert r is None or (isinstance(r, int) and -(2**63) <= r < 2**63)


@given(st.one_of(st.integers(), st.floats(), st.booleans()))
def test_epoch_numbers_never_raise(value: int | float) -> None:
    r = T.parse_epoch(value)
    assert r is None or -(2**63) <= r < 2**63
    if isinstance(value, float) and not math.isfinite(value):
        assert r is None
