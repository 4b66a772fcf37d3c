"""Block parsers (``parsers.columnar``) give, for every line, what the per-line parser gives.

Inputs: every case of the peer vectors (``../shared/data/vectors``: VRL's clf.jsonl cases and,
for json, every vector file's own lines, which are JSON objects, and its inputs, most of which
are not), real logs (``../shared/data/logs``), and generated lines in and around the strict
shape (``tests.parsers.test_clf._clf_like``). Each line is parsed alone, in the middle of a
block of well-formed lines (so the columnar path runs up to it and past it), and blocks of
generated lines are parsed whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import Parser, get_parser
from parsers import columnar as columnar_module
from parsers.clf import ClfParser
from parsers.columnar import Block, BlockParser, columnar_for, per_line
from parsers.json import JsonParser
from tests.parsers._vectors import LOGS_DIR, VECTORS_DIR, decode_text, load_cases
from tests.parsers.test_clf import _clf_like

DEFAULT_TS = 123


def _per_line(parser: Parser, lines: list[str]) -> list[tuple[Any, ...]]:
    out = []
    for line in lines:
        p = parser.parse(line)
        out.append((DEFAULT_TS if p.ts is None else p.ts, p.level, p.fields, p.error is None))
    return out


def _by_block(block: Block, count: int) -> list[tuple[Any, ...]]:
    fields = block.fields.dicts()
    levels = block.levels if block.levels is not None else [None] * count
    assert len(block.ts) == len(fields) == len(levels) == count
    return list(zip(block.ts, levels, fields, repeat(None), strict=False))


def _check(parser: Parser, columnar: BlockParser, lines: list[str]) -> None:
    """``parse_block`` over ``lines`` equals ``parse`` line by line: ts, level, fields (and
    key order), and the number of lines that failed."""
    lines = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]  # a block's lines
    blob = "\n".join(lines).encode("utf-8", "replace")
    lines = blob.decode("utf-8").split("\n")
    block = columnar.parse_block(blob, len(lines), DEFAULT_TS)
    expected = _per_line(parser, lines)
    got = _by_block(block, len(lines))
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [list(g[2]) for g in got] == [list(e[2]) for e in expected]
    assert block.errors == sum(1 for e in expected if not e[3])


_APACHE = (LOGS_DIR / "apache_combined.log").read_text().splitlines()
_JSONL = (LOGS_DIR / "nginxplus_status.jsonl").read_text().splitlines()


def _clf_parsers() -> list[ClfParser]:
    return [ClfParser("auto"), ClfParser("combined")]


def _vector_lines() -> list[str]:
    """Every input of clf.jsonl that is a text (one is a Rust expression built at run time in
    VRL's own test: no text here)."""
    cases = load_cases("clf")
    out = [
        decode_text(c["input"]) for c in cases if isinstance(c["input"], str) or "hex" in c["input"]
    ]
    assert len(out) >= len(cases) - 1
    return out


def test_every_columnar_parser_is_found() -> None:
    assert columnar_for(get_parser("clf")) is not None
    assert columnar_for(get_parser("json")) is not None
    # Every clf format has a block form now (common too); nginx's access formats do.
    for fmt in ("auto", "common", "combined"):
        assert columnar_for(get_parser("clf", format=fmt)) is not None
    for fmt in ("auto", "main", "combined"):
        assert columnar_for(get_parser("nginx", format=fmt)) is not None
    for fmt in ("error", "ingress_upstreaminfo"):
        assert columnar_for(get_parser("nginx", format=fmt)) is None
    assert columnar_for(get_parser("raw")) is None


@pytest.mark.parametrize("fmt", ["auto", "combined"])
def test_a_real_apache_log_by_block(fmt: str) -> None:
    parser = ClfParser(fmt)
    columnar = columnar_for(parser)
    assert columnar is not None
    by_line: list[int] = []

    def counted(parser: Parser, lines: list[str], default_ts: int) -> Block:
        by_line.append(len(lines))
        return per_line(parser, lines, default_ts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar_module, "per_line", counted)
        for i in range(0, len(_APACHE), 1000):
            _check(parser, columnar, _APACHE[i : i + 1000])
    # The columnar path takes the log: a few lines with escaped quotes go one by one.
    assert sum(by_line) < len(_APACHE) // 50


@pytest.mark.parametrize("fmt", ["auto", "combined"])
def test_every_clf_vector_alone_and_inside_a_block(fmt: str) -> None:
    """VRL's vectors (vectordotdev/vrl @ eae43fef, parse_common_log.rs, parse_apache_log.rs,
    parse_nginx_log.rs): every input, valid or not, for any of the three."""
    parser = ClfParser(fmt)
    columnar = columnar_for(parser)
    assert columnar is not None
    for line in _vector_lines():
        _check(parser, columnar, [line])
        _check(parser, columnar, [*_APACHE[:40], line, *_APACHE[40:80]])
    _check(parser, columnar, _vector_lines())


def test_a_clf_parser_with_its_own_time_format_goes_line_by_line() -> None:
    parser = ClfParser("auto", timestamp_format="%d/%b/%Y:%H:%M:%S %z")
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, _APACHE[:50])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_clf_like(), min_size=1, max_size=40),
    st.sampled_from(["auto", "combined"]),
    st.integers(0, 3),
)
def test_generated_lines_by_block(lines: list[str], fmt: str, pad: int) -> None:
    """Lines in and near the strict shape (bad spacing, escaped quotes, odd times, numbers
    that are not ASCII digits...), among real lines."""
    parser = ClfParser(fmt)
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, [*_APACHE[: pad * 20], *lines, *_APACHE[: pad * 5]])


def test_a_bisected_block_keeps_line_order_and_counts_errors() -> None:
    parser = ClfParser("auto")
    columnar = columnar_for(parser)
    assert columnar is not None
    broken = list(_APACHE[:300])
    for i in (0, 57, 58, 190, 299):
        broken[i] = broken[i].replace("[", "(", 1)  # off the strict shape, fails in general
    broken[100] = broken[100].replace('HTTP/1.1"', 'HTTP/1.1\\""', 1)  # an escaped quote
    _check(parser, columnar, broken)


# -- json -------------------------------------------------------------------------------------


def _vector_file_lines() -> list[str]:
    out: list[str] = []
    for path in sorted(VECTORS_DIR.rglob("*.jsonl")):
        out += path.read_text(encoding="utf-8").splitlines()
    return out


def test_json_real_log_and_every_vector_file_line() -> None:
    """Every line of every vector file is a JSON object (a case): nested values, unicode,
    numbers of all kinds; nginxplus_status.jsonl (elastic/examples) is ~5.5 KB per line."""
    parser = JsonParser()
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, _JSONL)
    lines = _vector_file_lines()
    for i in range(0, len(lines), 200):
        _check(parser, columnar, lines[i : i + 200])


def test_json_blocks_with_lines_that_are_not_objects() -> None:
    parser = JsonParser(time_key="ts")
    columnar = columnar_for(parser)
    assert columnar is not None
    inputs = [decode_text(c["input"]) for c in load_cases("logfmt")]
    good = ['{"ts": "2024-01-02T03:04:05Z", "level": "warn", "msg": "x"}'] * 5
    for bad in [*inputs, "", "[1, 2]", "\ufeff{}", '{"a": 1} {"b": 2}', "1", "null"]:
        _check(parser, columnar, [*good, bad, *good])


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["ts", "time", "level", "severity", "msg", "n", "é"]),
            _json_values
            | st.sampled_from(["2024-01-02T03:04:05Z", "error", "INFO", 1_700_000_000]),
            max_size=5,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_generated_json_objects_by_block(objs: list[dict[str, Any]]) -> None:
    parser = JsonParser()
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, [json.dumps(o, ensure_ascii=False) for o in objs])


# -- access logs: every format, odd lines, the time cache --------------------------------------
#
# The parsers with a block form for access logs, by name. Lines are checked against each one
# whatever their format: a parser given lines of another format must fail them as ``parse``
# does.
_ACCESS: dict[str, tuple[str, dict[str, str]]] = {
    "clf-auto": ("clf", {"format": "auto"}),
    "clf-common": ("clf", {"format": "common"}),
    "clf-combined": ("clf", {"format": "combined"}),
    "nginx-auto": ("nginx", {"format": "auto"}),
    "nginx-main": ("nginx", {"format": "main"}),
    "nginx-combined": ("nginx", {"format": "combined"}),
}


def _access(name: str) -> tuple[Parser, BlockParser]:
    kind, options = _ACCESS[name]
    parser = get_parser(kind, **options)
    columnar = columnar_for(parser)
    assert columnar is not None
    return parser, columnar


def _common(line: str) -> str:
    """A combined line cut after its size (common format)."""
    parts = line.split('"')
    return '"'.join(parts[:2]) + '"' + " ".join(parts[2].split(" ")[:3])


def _nginx(line: str) -> str:
    """A combined line as nginx writes it: body size ``0``, never ``-``."""
    parts = line.split('"')
    if len(parts) > 2 and parts[2].endswith(" - "):
        parts[2] = parts[2][:-2] + "0 "
    return '"'.join(parts)


_COMMON = [_common(line) for line in _APACHE]
_NGINX = [_nginx(line) for line in _APACHE]
_NGINX_MAIN = [
    line + ' "-"' if i % 3 else line + ' "10.1.2.3, 10.0.0.1"' for i, line in enumerate(_NGINX)
]


def _by_line_count(parser: Parser, columnar: BlockParser, lines: list[str], size: int) -> int:
    """``_check`` on blocks of ``size`` lines; how many lines went line by line."""
    by_line: list[int] = []

    def counted(parser: Parser, lines: Sequence[str], default_ts: int) -> Block:
        by_line.append(len(lines))
        return per_line(parser, lines, default_ts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar_module, "per_line", counted)
        for i in range(0, len(lines), size):
            _check(parser, columnar, lines[i : i + size])
    return sum(by_line)


@pytest.mark.parametrize(
    ("name", "lines", "most"),
    [
        ("clf-common", _COMMON, True),
        ("clf-auto", _COMMON, True),
        (  # common and combined lines, 50 of each in turn
            "clf-auto",
            [
                c if i // 50 % 2 else a
                for i, (a, c) in enumerate(zip(_APACHE, _COMMON, strict=True))
            ],
            True,
        ),
        (  # ... and 3 and 4 in turn: runs too short for columns, line by line
            "clf-auto",
            [c if i % 7 < 3 else a for i, (a, c) in enumerate(zip(_APACHE, _COMMON, strict=True))],
            None,
        ),
        ("clf-combined", _NGINX_MAIN, True),  # "$http_x_forwarded_for" after the agent
        ("clf-auto", [line + " 1234" for line in _APACHE], True),  # Apache's %D after it
        ("clf-combined", _COMMON, False),  # every line fails, as parse says
        ("nginx-auto", _NGINX, True),
        ("nginx-auto", _NGINX_MAIN, True),
        ("nginx-main", _NGINX_MAIN, True),
        ("nginx-combined", _NGINX, True),
        ("nginx-combined", _NGINX_MAIN, True),
        ("nginx-main", _NGINX, False),  # no "$http_x_forwarded_for": every line fails
        ("nginx-auto", _APACHE, True),  # "-" sizes (669 lines) fail nginx's regex
    ],
)
def test_real_access_logs_by_block(name: str, lines: list[str], most: bool | None) -> None:
    """apache_combined.log (elastic/examples @ 6d86454e) cut to common format, with nginx's
    sizes, with "$http_x_forwarded_for" or a response time appended, and mixed formats."""
    parser, columnar = _access(name)
    by_line = _by_line_count(parser, columnar, lines, 1000)
    if most:  # the block form takes all but the odd lines
        assert by_line < len(lines) // 10
    elif most is False:
        assert by_line == len(lines)


def _vector_and_log_lines() -> list[str]:
    return [*_vector_lines(), *_APACHE[:20], *_COMMON[:20], *_NGINX_MAIN[:20]]


@pytest.mark.parametrize("name", list(_ACCESS))
def test_every_vector_alone_and_inside_a_block_for_every_access_parser(name: str) -> None:
    """VRL's vectors (vectordotdev/vrl @ eae43fef, parse_common_log.rs, parse_apache_log.rs,
    parse_nginx_log.rs: common, combined, nginx main/combined/ingress/error, Apache error
    lines), each alone, inside blocks of each well-formed kind, and all in one block."""
    parser, columnar = _access(name)
    pads = [_APACHE[:30], _COMMON[:30], _NGINX_MAIN[:30]]
    for line in _vector_lines():
        _check(parser, columnar, [line])
        for pad in pads:
            _check(parser, columnar, [*pad[:15], line, *pad[15:]])
    _check(parser, columnar, _vector_and_log_lines())


_GOOD = '203.0.113.9 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl/8"'
# Lines in and around the strict shape, each a case a block parser could get wrong.
_ODD = [
    # escaped quotes and backslashes (Apache writes \" and \xhh)
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a\\"b HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "http://\\xe4/" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "a \\"q\\" b"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "\\\\" 200 5 "-" "x\\\\"',
    # "-" everywhere a value may be absent, and where it may not
    '- - - [17/May/2015:10:05:03 +0000] "-" - - "-" "-"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 304 - "-" "-"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "-" 400 0 "-" "-" "-"',
    '1.2.3.4 -x -x [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-x" "-x" "-x"',
    # IPv6 and other hosts
    '2001:db8::1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '::ffff:192.0.2.1 - bob [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "-"',
    '2019/10/10 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    # bad dates, leap days, leap seconds, zones
    '1.2.3.4 - - [30/Feb/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [31/Apr/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [29/Feb/2000:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [29/Feb/2024:23:59:59 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [29/Feb/1900:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [29/Feb/2023:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [31/Dec/2016:23:59:60 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [31/Dec/2016:23:59:61 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:24:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:60:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0530] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 -0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 -1200] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +1400] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +2400] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0060] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/may/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/Mai/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [7/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03.25 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [2015-05-17T10:05:03Z] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [01/Jan/1677:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [11/Apr/2262:23:47:16 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [12/Apr/2262:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/0000:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    # blanks: doubled, tabs, other ASCII and unicode blanks (nginx reads \\s as unicode)
    '1.2.3.4  - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 -  [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "-"',
    '1.2.3.4  bob [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "-"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "" "-"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "" "" ""',
    '1.2.3.4\t- - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - bo\x1cb [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - bo\u00a0b [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - bo\u2003b [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET  /a HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] " GET /a HTTP/1.1 " 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET\t/a HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET\u00a0/a HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1\x1f" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a b c HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "G_T /a H" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "G-T /a H" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "" 400 0 "" ""',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" ',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"  "y" ',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" ""',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "-" "z"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-"  "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-""x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 ',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 x',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1"200 5',
    ' 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    # a quote glued to a token, blanks doubled or around a request of two or three parts
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] x"GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000]"GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 x"-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1"x 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" x"x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5"-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET  /a" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] " GET /a" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /a " 200 5 "-" "x"',
    # numbers that are not ASCII digits, or not numbers, or long
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" ٢٠٠ 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 ٣ "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 007 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 2x0 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 -5 "-" "x"',
    f'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 {"9" * 40} "-" "x"',
    # very long lines, non-ASCII
    f'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /{"a" * 100_000} HTTP/1.1" 200 5 "-" "x"',
    f'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "{"é" * 50_000}"',
    'é.example - 用户 [17/May/2015:10:05:03 +0000] "GET /ü HTTP/1.1" 200 5 "http://ü/" "😀"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /\ufffd HTTP/1.1" 200 5 "-" "\x00"',
    # quote counts that a block could mistake for others when lines sit next to each other
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x',
    '" "x" 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"'
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
    "1.2.3.4 - - [17/May/2015:10:05:03 +0000] ",
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1"',
    '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-"',
    "",
    " ",
    '"',
    '""""""',
    '"" "" "" "" ""',
    "-",
]


@pytest.mark.parametrize("name", list(_ACCESS))
def test_odd_lines_alone_among_good_lines_and_together(name: str) -> None:
    parser, columnar = _access(name)
    goods = [_GOOD, _NGINX_MAIN[0], _COMMON[0]]
    for line in _ODD:
        _check(parser, columnar, [line])
        for good in goods:
            _check(parser, columnar, [good, line, good])
            _check(parser, columnar, [*[good] * 40, line, *[good] * 40])
            _check(parser, columnar, [line, *[good] * 3])
            _check(parser, columnar, [*[good] * 3, line])
    _check(parser, columnar, _ODD)
    _check(parser, columnar, [x for line in _ODD for x in (line, _GOOD)])
    # Next to each other: each pair of odd lines, among good ones.
    for a, b in zip(_ODD, _ODD[1:] + _ODD[:1], strict=True):
        _check(parser, columnar, [_GOOD, a, b, _GOOD])


@pytest.mark.parametrize("name", ["clf-auto", "nginx-auto"])
def test_the_time_cache_across_blocks_zones_and_clears(name: str) -> None:
    """One block parser over many blocks: seconds seen before come from the cache, several
    zones in one block, and caches cleared when full (bounds made small here)."""
    parser, columnar = _access(name)
    zones = ["+0000", "+0530", "-0000", "-0800", "+1345"]
    lines = []
    for i in range(600):
        second = f"{i // 7 % 60:02d}"
        zone = zones[i // 50 % len(zones)] if i % 11 else zones[i % len(zones)]
        lines.append(
            f'10.0.0.{i % 9} - - [29/Feb/2024:23:59:{second} {zone}] "GET /{i} HTTP/1.1" '
            f'200 {i} "-" "x" "-"'
        )
    for _ in range(2):
        for size in (1, 7, 100, 600):
            for i in range(0, len(lines), size):
                _check(parser, columnar, lines[i : i + size])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar_module, "_TIMES_MAX", 3)
        mp.setattr(columnar_module, "_ZONES_MAX", 2)
        mp.setattr(columnar_module, "_DAYS_MAX", 1)
        fresh = columnar_for(parser)
        assert fresh is not None
        for i in range(0, len(lines), 50):
            _check(parser, fresh, lines[i : i + 50])
        _check(parser, fresh, [_nginx(x) for x in _APACHE[:2000]])


_HOST = st.sampled_from(
    ["1.2.3.4", "1.2.3.4", "2001:db8::1", "-", "é.example", "a\u00a0b", "x\x1cy", "", "2019/10/10"]
)
_WORD = st.sampled_from(["-", "-", "bob", "", "-x", "b\tc", "用户"])
_ZONE = st.sampled_from(["+0000", "-0000", "+0530", "-1200", "+2400", "0000", "+00:00"])
_DAY = st.sampled_from(["17/May/2015", "29/Feb/2000", "29/Feb/1900", "31/Apr/2015", "7/May/2015"])
_CLOCK = st.sampled_from(["10:05:03", "23:59:60", "24:00:00", "00:00:00", "10:05:03.5"])
_FIELD = st.sampled_from(
    ["GET / HTTP/1.1", "GET / HTTP/1.1", "-", "", 'a\\"b', "x\\", " GET  / H ", "é ü x", "G_T / H"]
)
_NUM = st.sampled_from(["200", "200", "0", "-", "007", "٣", "", "12x"])


@st.composite
def _access_line(draw: st.DrawFn) -> str:
    """A line in or near the strict shape of any access format."""
    sep = draw(st.sampled_from([" "] * 8 + ["  ", "\t"]))
    head = [draw(_HOST), draw(_WORD), draw(_WORD), f"[{draw(_DAY)}:{draw(_CLOCK)} {draw(_ZONE)}]"]
    quoted = [f'"{draw(_FIELD)}"']
    numbers = [draw(_NUM), draw(_NUM)]
    tail: list[str] = []
    fields = draw(st.integers(0, 3))
    if fields >= 1:
        tail += [f'"{draw(_FIELD)}"', f'"{draw(_FIELD)}"']
    if fields >= 2:
        tail.append(f'"{draw(_FIELD)}"')
    if fields >= 3:
        tail.append(draw(st.sampled_from(["1234", '"', "x y"])))
    return sep.join([*head, *quoted, *numbers, *tail]) + draw(st.sampled_from([""] * 6 + [" "]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_access_line(), min_size=1, max_size=30),
    st.sampled_from(list(_ACCESS)),
    st.integers(0, 2),
)
def test_generated_access_lines_by_block(lines: list[str], name: str, pad: int) -> None:
    """Lines in and near every access shape (blanks, quotes, times, zones, numbers, trailing
    text), among real lines of each kind."""
    parser, columnar = _access(name)
    _check(parser, columnar, [*_NGINX_MAIN[: pad * 15], *lines, *_COMMON[: pad * 5]])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from([*_ODD[:8], *_ODD[-14:], _GOOD, _COMMON[1], _NGINX_MAIN[2], _APACHE[3]]),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(list(_ACCESS)),
)
def test_generated_blocks_of_odd_and_good_lines(lines: list[str], name: str) -> None:
    """Blocks mixing lines of every quote count (and none), empty lines and good lines, in
    any order: the cuts between runs of lines must fall where the lines end."""
    parser, columnar = _access(name)
    _check(parser, columnar, lines)


# -- json: the time column, levels, shapes ---------------------------------------------------

_SECONDS = st.sampled_from(
    [
        "2024-02-29T23:59:59",
        "2024-02-29T23:59:60",
        "2023-02-29T10:00:00",
        "2023-11-14 22:13:20",
        "2023-11-14t22:13:20",
        "1677-09-21T00:12:44",
        "1677-09-21T00:12:43",
        "2262-04-11T23:47:16",
        "2262-04-11T23:47:15",
        "1899-12-31T23:59:59",
        "2200-01-01T00:00:00",
        "0001-01-01T00:00:00",
        "2024-13-01T00:00:00",
        "2024-01-01T25:00:00",
        "\uff12\uff10\uff12\uff14-01-01T00:00:00",
    ]
)


@st.composite
def _rfc3339(draw: st.DrawFn, digits: int) -> str:
    """A time of one layout (``digits`` fraction digits), mostly "...Z", sometimes not."""
    fraction = "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
    )
    mark = draw(st.sampled_from(["."] * 6 + [",", "x"]))
    zone = draw(st.sampled_from(["Z"] * 6 + ["z", "+00:00", "-0130", ""]))
    return draw(_SECONDS) + (mark + fraction if digits else "") + zone


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 12).flatmap(lambda n: st.lists(_rfc3339(n), min_size=1, max_size=12)))
def test_json_time_columns_of_one_layout(times: list[str]) -> None:
    """Times of one length (the column path's case): fractions of 0 to 12 digits, leap days
    and seconds, the ends of the int64 range, other separators, zones and marks; a cleared
    cache of seconds (its bound made small)."""
    parser = JsonParser()
    columnar = columnar_for(parser)
    assert columnar is not None
    lines = [json.dumps({"ts": t, "level": "info", "n": i}) for i, t in enumerate(times)]
    _check(parser, columnar, lines)
    _check(parser, columnar, lines + lines)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar_module, "_SECONDS_MAX", 2)
        fresh = columnar_for(parser)
        assert fresh is not None
        _check(parser, fresh, lines)


@pytest.mark.parametrize(
    "times",
    [
        ["2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z"],
        ["2262-04-11T23:47:16.9Z", "2262-04-11T23:47:15.9Z"],
        ["2262-04-11T23:47:16Z", "2262-04-11T23:47:17Z"],
        ["1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:43.145224191Z"],
        ["1677-09-21T00:12:44.000000000Z", "1677-09-21T00:12:43.999999999Z"],
        ["2024-01-01T00:00:00.Z", "2024-01-01T00:00:01.Z"],
    ],
)
def test_json_time_columns_at_the_ends_of_int64(times: list[str]) -> None:
    """int64 nanoseconds end inside a second (1677-09-21T00:12:43.145224192Z and
    2262-04-11T23:47:16.854775807Z): a fraction can carry a time out of range."""
    parser = JsonParser()
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, [json.dumps({"ts": t}) for t in times])


@pytest.mark.parametrize(
    "times",
    [
        ["2024-01-01T00:00:005.3Z", "2024-01-01T00:00:01.33Z"],  # a digit where "." goes
        ["2024-01-01T00:00:00.1.3Z", "2024-01-01T00:00:01.123Z"],  # a second "."
        ["2024-01-01T00:00:00.1Z3Z", "2024-01-01T00:00:01.123Z"],  # a "Z" inside
        ["2024-01-01T00:00:00.1 3Z", "2024-01-01T00:00:00.1,3Z", "2024-01-01T00:00:00.1e3Z"],
        ["2024-01-01T00:00:00+", "2024-01-01T00:00:01Z"],
        ["2024-01-01T00:00:00z", "2024-01-01T00:00:01Z"],
        ["2024-01-01T00:00:001", "2024-01-01T00:00:01Z"],
        ["2024-01-01T00:00:00.000000000Z", "2024-01-01T00:00:00.999999999Z"],
        ["2024-01-01T00:00:00.0Z", "2024-01-01T00:00:00.9Z"],
    ],
)
def test_json_time_columns_of_odd_layouts(times: list[str]) -> None:
    """Times of one length that are almost the column's layout: each must come out as
    ``parse_rfc3339`` reads it alone."""
    parser = JsonParser()
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, [json.dumps({"ts": t}) for t in times])
    for t in times:
        _check(parser, columnar, [json.dumps({"ts": t})] * 3)


def test_json_columns_take_the_common_lines_at_once() -> None:
    """Generated structlog/zap-like lines: times and levels come from their columns, with no
    call of the per-object functions (counted by wrapping the very functions)."""
    parser = JsonParser()
    columnar = columnar_for(parser)
    assert columnar is not None
    lines = [
        json.dumps(
            {
                "ts": f"2023-11-14T22:13:{i % 60:02d}.{i * 7919 % 1000000:06d}Z",
                "level": ["info", "warn", "error", "debug"][i % 4],
                "msg": "request done",
                "status": 200,
            }
        )
        for i in range(500)
    ]
    calls: list[str] = []
    real_ts, real_level = columnar_module.ts_from_fields, columnar_module.level_from_fields

    def ts_counted(*args: Any) -> Any:
        calls.append("ts")
        return real_ts(*args)

    def level_counted(*args: Any) -> Any:
        calls.append("level")
        return real_level(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar_module, "ts_from_fields", ts_counted)
        mp.setattr(columnar_module, "level_from_fields", level_counted)
        _check(parser, columnar, lines)
        assert calls == []
        # A level that is not a known spelling goes through ``level_from_fields``: that
        # object only. A time column that is not all texts goes object by object.
        odd = [
            *lines[:10],
            json.dumps({"ts": 1700000000, "level": "LOUD", "msg": "x", "status": 1}),
        ]
        _check(parser, columnar, odd)
        assert calls.count("level") == 1
        assert calls.count("ts") == len(odd)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "ts": st.sampled_from(["2024-01-02T03:04:05.123Z", "2024-01-02T03:04:06.5Z", 17e8]),
                "time": st.sampled_from(["2024-01-02T03:04:05Z", "bad", 1_700_000_000_123]),
                "level": st.sampled_from(["info", "WARN", "nope", 30, None, ["x"]]),
                "severity": st.sampled_from(["error", 3]),
                "log": st.sampled_from([{"level": "debug"}, "x"]),
                "msg": st.text(max_size=5),
                "ts2": st.none(),
            },
        ),
        min_size=1,
        max_size=15,
    ),
    st.sampled_from([None, "time", "ts2"]),
)
def test_json_objects_of_mixed_shapes(objs: list[dict[str, Any]], time_key: str | None) -> None:
    """Objects whose keys vary (so columns are gathered key by key), with time and level keys
    in every type, and the ``time_key`` option."""
    parser = JsonParser(time_key=time_key)
    columnar = columnar_for(parser)
    assert columnar is not None
    _check(parser, columnar, [json.dumps(o) for o in objs])
    _check(parser, columnar, [json.dumps(o) for o in objs] + ["not json", "{}"])


@pytest.mark.parametrize("name", list(_ACCESS))
def test_lines_whose_quotes_compensate_next_to_backslashes(name: str) -> None:
    """A line with a quote too few next to one with an escaped quote (a quote too many):
    the block's total is that of well-formed lines, so cuts made as if each line had its
    share land inside a line, and must be found out."""
    parser, columnar = _access(name)
    short = '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x'
    escaped = '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /\\" HTTP/1.1" 200 5 "-" "x"'
    backslash = '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /\\x HTTP/1.1" 200 5 "-" "x"'
    no_quotes = "1.2.3.4 - - [17/May/2015:10:05:03 +0000] - 200 5 - -"
    twelve = _GOOD + " " + _GOOD
    pieces = [short, escaped, backslash, no_quotes, twelve, _GOOD, _COMMON[0]]
    for a in pieces:
        for b in pieces:
            for c in (backslash, escaped, _GOOD):
                _check(parser, columnar, [a, b, c])
                _check(parser, columnar, [c, a, b])
                _check(parser, columnar, [*[_GOOD] * 35, a, c, b, *[_GOOD] * 35])


@pytest.mark.parametrize(
    ("name", "odd"),
    [
        ("clf-auto", '1.2.3.4\t- - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"'),
        ("clf-auto", '1.2.3.4 - - x [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"'),
        (
            "nginx-auto",
            '1.2.3.4 - b\u2003b [17/May/2015:10:05:03 +0000] "GET / H" 200 5 "-" "x" "-"',
        ),
        ("nginx-auto", '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / H" 200  5 "-" "x" "-"'),
        ("clf-auto", '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /\\x HTTP/1.1" 200 5 "-" "x"'),
        ("clf-auto", '1.2.3.4 - - [31/Apr/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "x"'),
        ("nginx-auto", '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / H" 200 - "-" "x" "-"'),
    ],
)
def test_an_odd_line_costs_only_itself(name: str, odd: str) -> None:
    """One line off the shape among 999 good ones (a blank, a token too many, a backslash, a
    bad date, a "-" nginx refuses): that line goes line by line, the others by columns."""
    parser, columnar = _access(name)
    lines = [*_NGINX[:600], odd, *_NGINX[600:999]]
    if name.startswith("nginx"):
        lines = [*_NGINX_MAIN[:600], odd, *_NGINX_MAIN[600:999]]
    assert _by_line_count(parser, columnar, lines, 1000) < 10


@pytest.mark.parametrize("name", sorted(_ACCESS))
@pytest.mark.parametrize("digits", ["9" * 18, str((1 << 63) - 1), str(1 << 63), "9" * 5000])
def test_numbers_past_64_bits_are_errors_by_line_and_by_block(name: str, digits: str) -> None:
    """A status or size too large for a batch's 64-bit integers is the line's parse error (it
    could not be stored as a field: the whole batch would fail), never an exception."""
    parser, columnar = _access(name)
    good = {"clf-common": _COMMON, "nginx-main": _NGINX_MAIN}.get(
        name, _NGINX if name.startswith("nginx") else _APACHE
    )
    odd = [_numbers_set(good[0], k, digits) for k in (1, 2)]  # status, size
    fits = len(digits) < 20 and int(digits) <= (1 << 63) - 1
    for line in odd:
        assert (parser.parse(line).error is None) == fits, line[:200]
    _check(parser, columnar, good[:20] + odd + good[20:40])


def _numbers_set(line: str, k: int, digits: str) -> str:
    """``line`` with its status (``k`` 1) or size (2) replaced by ``digits``."""
    parts = line.split('"')
    tokens = parts[2].split(" ")  # "", status, size[, ""]
    assert tokens[k].isdigit(), line
    tokens[k] = digits
    parts[2] = " ".join(tokens)
    return '"'.join(parts)
