"""``collector.filters.where``: parsing, precise errors, evaluation rules, and fuzzing (only ``WhereError``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.filters.where import MAX_DEPTH, WhereError, parse
from wharf.record import Record

REC = Record(
    ts=1_700_000_000_000_000_000,
    line='10.0.0.1 - - "GET /api/users HTTP/1.1" 503 12',
    host="web-1",
    source="/var/log/nginx/access.log",
    level="warn",
    fields={
        "status": 503,
        "size": "12",
        "path": "/api/users",
        "version": "1.10",
        "ok": False,
        "http": {"status": "404", "method": "GET"},
        "kube.pod": "api-7f9",
        "host": "10.0.0.1",
        "ratio": 0.25,
        "nothing": None,
    },
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("status>=500", True),
        ("status>=500 and path~'^/api'", True),
        ('status>=500 and path~"^/web"', False),
        ('status>=500 and path~"^/api" or not level=error', True),
        ("status<500 or level=error", False),
        ("not (status<500 or level=error)", True),
        ("status=503", True),
        ("status==503.0", True),
        ('status="503"', True),  # a quoted number still equals a numeric field
        ("size>9", True),  # numeric string vs number: numeric (as text "12" < "9")
        ("size=12", True),
        ('version="1.1"', False),  # quoted: text, so versions are not numbers
        ("version>1.9", False),  # bare number: 1.10 vs 1.9 numerically
        ("http.status=404", True),  # nested object
        ("http.status>400", True),
        ("http.method=GET", True),
        ("kube.pod=api-7f9", True),  # a flat key with a dot wins
        ("host=web-1", True),  # the record's host...
        ("fields.host=10.0.0.1", True),  # ...and the parsed field of the same name
        ("source~nginx", True),
        ('line~"HTTP/1\\.1\\" 5\\d\\d"', True),
        ("level>=warn", True),
        ("level>warn", False),
        ("level<error", True),
        ("level=WARN", False),  # text equality is exact
        ("ok=false", True),
        ("nothing=null", True),
        ("ratio<0.5", True),
        ("missing=1", False),
        ("missing!=1", True),  # != is exactly "not ="
        ("missing!~x", True),
        ("missing>1", False),
        ("status!=503", False),
        ("path!~'^/api'", False),
        ("ts>=1700000000000000000", True),
        ("path<'/b'", True),  # text ordering
        ("status>'a'", False),  # a number never orders against text
        ("NOT status=1 AND status=503", True),  # keywords ignore case
    ],
)
def test_evaluation(expr: str, expected: bool) -> None:
    assert parse(expr).matches(REC) is expected


@pytest.mark.parametrize(
    ("expr", "column", "fragment"),
    [
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("status>=", 9, "expected a value after '>='"),
        ("status", 7, "expected an operator after 'status'"),
        ("status>=500 and", 16, "expected a field name"),
        ("status>=500 level=error", 13, "missing 'and' or 'or'"),
        ("(status=1", 10, "expected ')' to close the '(' at column 1"),
        ("status=1)", 9, "unexpected ')'"),
        ('path="abc', 6, "unterminated string"),
        ("a!b", 2, "'!' is not an operator"),
        ("a=1 and or b=2", 9, "expected a field name, found 'or'"),
        ('path~"(unclosed"', 6, "invalid regular expression '(unclosed'"),
        ("9lives=1", 1, "is not a field name"),
        ("a..b=1", 1, "is not a field name"),
        ("=1", 1, "expected a field name, found '='"),
    ],
)
def test_errors_say_what_and_where(expr: str, column: int, fragment: str) -> None:
    with pytest.raises(WhereError) as info:
        parse(expr)
    assert info.value.column == column, str(info.value)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"invalid where expression at column {column}: ")


def test_nesting_is_bounded() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "a=1" + ")" * (MAX_DEPTH - 1)
    assert parse(ok).matches(Record(ts=0, line="", fields={"a": 1}))
    with pytest.raises(WhereError, match="nested deeper"):
        parse("(" * 2000 + "a=1" + ")" * 2000)
    with pytest.raises(WhereError, match="nested deeper"):
        parse("not " * 1000 + "a=1")
    with pytest.raises(WhereError, match="exceeds"):
        parse("a=1 and " * 1000 + "a=1")


def test_str_is_canonical_and_parses_back() -> None:
    e = parse('a = 1 AND (b ~ \'x"y\' OR NOT c != "q r") and d=e')
    assert str(e) == 'a=1 and (b~"x\\"y" or not c!="q r") and d=e'
    assert str(parse(str(e))) == str(e)


# -- fuzzing --------------------------------------------------------------------------------

_pieces = st.sampled_from(
    [" ", "(", ")", "and", "or", "not", "=", "!=", "<", "<=", ">", ">=", "~", "!~", "!", "==",
     '"', "'", "\\", "a", "b.c", "1", "-2.5e3", "level", "warn", "[", "(?P<", "\x00", "\ud800"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_where_error(text: str) -> None:
    try:
        e = parse(text)
    except WhereError:
        return
    e.matches(REC)
    assert str(parse(str(e))) == str(e)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_pieces, max_size=20).map("".join))
def test_token_soup_raises_only_where_error(text: str) -> None:
    try:
        e = parse(text)
    except WhereError:
        return
    e.matches(REC)
    assert str(parse(str(e))) == str(e)


_names = st.sampled_from(["status", "level", "http.status", "path", "host", "x"])
_values = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["warn", "error", "/api", "GET", "a b", 'q"uote', "back\\slash", "", "not"]),
)
_ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "~", "!~"])


def _tree(depth: int) -> Any:
    leaf = st.builds(lambda n, o, v: f"{n}{o}{_q(v)}", _names, _ops, _values)
    if depth == 0:
        return leaf
    sub = _tree(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda a, b: f"({a}) and ({b})", sub, sub),
        st.builds(lambda a, b: f"({a}) or ({b})", sub, sub),
        st.builds(lambda a: f"not ({a})", sub),
    )


def _q(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


_fields = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(st.integers(-10, 600), st.text(max_size=4), st.none(), st.booleans()),
        "path": st.text(max_size=6),
        "http": st.dictionaries(st.sampled_from(["status", "x"]), st.integers() | st.text()),
        "x": st.floats(allow_nan=True) | st.lists(st.integers(), max_size=2),
    },
)


@settings(max_examples=300, deadline=None)
@given(_tree(3), _fields, st.sampled_from([None, "warn", "error", "info"]))
def test_generated_expressions_parse_and_evaluate(expr: str, fields: Any, level: Any) -> None:
    """Well-formed expressions always parse (regex values aside), evaluate without raising,
    and ``not`` is exactly the negation."""
    try:
        e = parse(expr)
    except WhereError as exc:
        assert "regular expression" in str(exc)
        return
    rec = Record(ts=1, line="l", host="h", level=level, fields=fields)
    assert parse(f"not ({expr})").matches(rec) is (not e.matches(rec))
    assert parse(str(e)).matches(rec) is e.matches(rec)
