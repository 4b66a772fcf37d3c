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
    assert columnar_for(get_parser("clf", format="common")) is None
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
