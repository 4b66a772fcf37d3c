"""Arbitrary input into the access/error-log, container, regex and multiline stages: a
``Parsed`` always comes back (never an exception), and it is well-formed."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import LEVELS, Parsed
from parsers.apache_error import ApacheErrorParser
from parsers.clf import ClfParser
from parsers.cri import CriParser
from parsers.docker import DockerParser
from parsers.multiline import PRESETS, Multiline, MultilineConfig
from parsers.nginx import NginxParser
from parsers.partial import PartialMerger
from parsers.regex import RegexParser

_PARSERS: list[Any] = [
    ClfParser(),
    ClfParser("common"),
    ClfParser("combined"),
    ClfParser(timestamp_format="%Y-%m-%d %H:%M:%S"),
    NginxParser(),
    NginxParser("combined"),
    NginxParser("main"),
    NginxParser("error"),
    NginxParser("ingress_upstreaminfo"),
    ApacheErrorParser(),
    CriParser(),
    DockerParser(),
    RegexParser(r"^(?P<time>\S+) (?P<level>\w+) (?P<msg>.*)$", time_key="time"),
    RegexParser(r"(?P<a>x+)?(?P<b>y)", level_key=None),
]

# Lines near each format, so the fuzzing reaches past the first character.
_SEEDS = [
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326 "-" "curl"',
    "2021/04/01 13:02:31 [error] 31#31: *1 open() failed, client: 1.2.3.4, server: x",
    "[Wed Oct 11 14:32:52.123 2000] [core:error] [pid 1:tid 2] [client 1.2.3.4:5] AH1: x",
    "2016-10-06T00:17:09.669794202Z stdout P The content",
    '{"log":"hi\\n","stream":"stdout","time":"2016-10-05T00:00:30.082640485Z"}',
]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    seed = draw(st.sampled_from(_SEEDS))
    i = draw(st.integers(0, len(seed)))
    j = draw(st.integers(i, len(seed)))
    return seed[:i] + draw(st.text(max_size=8)) + seed[j:]


_TEXT = st.text() | _mutated() | st.sampled_from(["", " ", "\x00", "\ud800", "-" * 7])


def _check(parsed: Parsed) -> None:
    assert isinstance(parsed, Parsed)
    assert parsed.level is None or parsed.level in LEVELS
    assert parsed.ts is None or isinstance(parsed.ts, int)
    if parsed.error is not None:
        assert parsed.fields == {} and isinstance(parsed.error, str)
    else:
        assert isinstance(parsed.fields, dict)


@settings(max_examples=500)
@given(line=_TEXT)
def test_every_parser_returns_parsed(line: str) -> None:
    for parser in _PARSERS:
        _check(parser.parse(line))


@settings(max_examples=200)
@given(line=_TEXT.filter(lambda s: not any(0xD800 <= ord(c) < 0xE000 for c in s)))
def test_fields_are_json_encodable(line: str) -> None:
    for parser in _PARSERS:
        msgspec.json.encode(parser.parse(line))


_FRAGMENT = st.tuples(
    st.sampled_from(["stdout", "stderr"]),
    st.sampled_from(["P", "F"]),
    st.binary(max_size=12) | st.sampled_from([b"caf\xc3", b"\xa9!", b"\xe2\x82", b"\xac"]),
)


@settings(max_examples=300)
@given(
    fragments=st.lists(_FRAGMENT, max_size=30),
    max_bytes=st.integers(1, 40),
    flush_at=st.lists(st.integers(0, 30), max_size=3),
)
def test_merger_loses_nothing(
    fragments: list[tuple[str, str, bytes]], max_bytes: int, flush_at: list[int]
) -> None:
    """Fragments read with surrogateescape (raw bytes kept): per stream, each event is the next
    ``parts`` fragments' bytes joined, then decoded; no fragment is lost or reordered."""
    merger = PartialMerger(max_bytes=max_bytes, flush_timeout_ns=10)
    events = []
    for i, (stream, tag, raw) in enumerate(fragments):
        if i in flush_at:
            events += merger.flush_due(i * 100)
        text = raw.decode("utf-8", "surrogateescape")
        parsed = Parsed(fields={"stream": stream, "tag": tag, "message": text})
        events += merger.feed(parsed, i * 10, 10, now_ns=i)
    events += merger.flush()
    assert merger.pending_offset is None
    assert sum(e.parts for e in events) == len(fragments)
    for stream in ("stdout", "stderr"):
        mine = [raw for s, _, raw in fragments if s == stream]
        for event in (e for e in events if e.parsed.fields["stream"] == stream):
            taken, mine = mine[: event.parts], mine[event.parts :]
            expected = b"".join(taken).decode("utf-8", "replace")
            assert event.parsed.fields["message"] == expected
            msgspec.json.encode(event.parsed)
        assert mine == []


@settings(max_examples=200)
@given(lines=st.lists(st.text(max_size=40), max_size=30), preset=st.sampled_from(sorted(PRESETS)))
def test_multiline_presets_take_anything(lines: list[str], preset: str) -> None:
    grouper = Multiline(MultilineConfig(preset=preset, max_lines=9, max_bytes=200))
    out: list[str] = []
    for i, line in enumerate(lines):
        out += grouper.feed(line, i)
        out += grouper.flush_due(i)
    out += grouper.flush()
    assert "\n".join(out) == "\n".join(lines)
