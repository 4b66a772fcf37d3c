"""``cli.render``, one renderer per output format, unit by unit: json is the API's bytes, raw is
the line, logfmt quotes and flattens losslessly (read back by a small logfmt reader), templates
name attributes and fields, text marks context lines; and ``Printer`` on a pipe."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.render import (
    FORMATS,
    Printer,
    encoder_for,
    parse_format,
    render_json,
    render_logfmt,
    render_raw,
    render_template,
    render_text,
    renderer,
    rfc3339,
    rfc3339_ns,
    styled_text,
)
from wharf.api import ContextHit, Hit, encode_row
from wharf.errors import InvalidArgument

TS = 1_714_564_800_123_456_789  # 2024-05-01T12:00:00.123456789Z


def hit(**changes: Any) -> Hit:
    values: dict[str, Any] = {
        "topic": "app", "partition": 2, "offset": 9, "ts": TS, "host": "web-1",
        "source": "/var/log/app.log", "line": "GET /x 200", "fields": {}, "level": None,
    }  # fmt: skip
    values.update(changes)
    return Hit(**values)


# -- a logfmt reader, to check that what we write reads back -------------------------------

_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s+|$)')


def read_logfmt(text: str) -> list[tuple[str, str]]:
    """Key/value pairs of one logfmt line (quoted values unquoted with JSON rules); the whole
    line must be pairs."""
    pairs, pos = [], 0
    while pos < len(text):
        m = _PAIR.match(text, pos)
        assert m is not None, f"not logfmt at {pos}: {text[pos:]!r}"
        key, raw = m.groups()
        pairs.append((key, json.loads(raw) if raw.startswith('"') else raw))
        pos = m.end()
    return pairs


# -- json and raw -----------------------------------------------------------------------------


def test_json_is_the_api_bytes() -> None:
    plain = hit(fields={"status": 200, "http": {"method": "GET"}, "who": "zoë"}, level="info")
    assert (render_json(plain) + "\n").encode() == encode_row(plain)
    assert list(json.loads(render_json(plain))) == [
        "topic", "partition", "offset", "ts", "host", "source", "line", "fields", "level",
    ]  # fmt: skip
    ctx = ContextHit(*(getattr(plain, f) for f in plain.__struct_fields__), match=False, group=3)
    assert (render_json(ctx) + "\n").encode() == encode_row(ctx)
    assert json.loads(render_json(ctx))["match"] is False
    assert encoder_for("json")(ctx) == encode_row(ctx)
    assert "zoë" in render_json(plain)  # UTF-8, not \u escapes, as the API sends it


def test_raw_is_the_line_unchanged() -> None:
    line = 'a\tb "c" \\ zoë  '
    assert render_raw(hit(line=line)) == line
    assert encoder_for("raw")(hit(line=line)) == (line + "\n").encode()
    assert encoder_for("raw")(hit(line="bad \udcff byte")) == b"bad \xff byte\n"


# -- logfmt -----------------------------------------------------------------------------------


def test_logfmt_order_time_and_attributes() -> None:
    line = render_logfmt(hit(level="warn", fields={"status": 500}))
    assert line == (
        "ts=2024-05-01T12:00:00.123456789Z topic=app partition=2 offset=9 host=web-1 "
        'source=/var/log/app.log level=warn status=500 line="GET /x 200"'
    )
    assert "level=" not in render_logfmt(hit())  # no level, no key
    assert render_logfmt(hit(ts=0)).startswith("ts=1970-01-01T00:00:00.000000000Z ")


def test_logfmt_quotes_what_needs_it_and_nothing_else() -> None:
    fields = {
        "bare": "GET", "empty": "", "space": "a b", "eq": "a=b", "quote": 'say "hi"',
        "backslash": "C:\\x", "tab": "a\tb", "newline": "a\nb", "ctl": "a\x01b",
        "unicode": "zoë", "yes": True, "no": False, "none": None, "n": -3, "f": 1.5,
        "list": ["a", 1], "nums": [1, 2],
    }  # fmt: skip
    out = render_logfmt(hit(fields=fields))
    for expected in (
        " bare=GET ", ' empty="" ', ' space="a b" ', ' eq="a=b" ', r' quote="say \"hi\"" ',
        r' backslash="C:\\x" ', r' tab="a\tb" ', r' newline="a\nb" ', r' ctl="a\u0001b" ',
        " unicode=zoë ", " yes=true ", " no=false ", ' none="" ', " n=-3 ", " f=1.5 ",
        r' list="[\"a\",1]" ', " nums=[1,2] ",
    ):  # fmt: skip
        assert expected in out, expected
    assert "\n" not in out and "\t" not in out  # one line, whatever the values


def test_logfmt_flattens_nested_fields_and_keeps_attributes_apart() -> None:
    fields = {
        "http": {"method": "GET", "req": {"path": "/a b"}},
        "host": "peer", "ts": "yesterday", "offset": 5, "line": "x",
        "empty": {}, "bad key=": 1, "": 2,
    }  # fmt: skip
    pairs = read_logfmt(render_logfmt(hit(fields=fields)))
    assert pairs == [
        ("ts", "2024-05-01T12:00:00.123456789Z"), ("topic", "app"), ("partition", "2"),
        ("offset", "9"), ("host", "web-1"), ("source", "/var/log/app.log"),
        ("http.method", "GET"), ("http.req.path", "/a b"), ("fields.host", "peer"),
        ("fields.ts", "yesterday"), ("fields.offset", "5"), ("fields.line", "x"),
        ("empty", "{}"), ("bad_key_", "1"), ("_", "2"), ("line", "GET /x 200"),
    ]  # fmt: skip
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys))  # every key once: no field shadows the record's own


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8"), max_size=8),
        st.one_of(
            st.text(st.characters(codec="utf-8"), max_size=20),
            st.integers(),
            st.booleans(),
            st.none(),
        ),
        max_size=5,
    ),
    st.text(st.characters(codec="utf-8"), max_size=40),
)
def test_logfmt_reads_back(fields: dict[str, Any], line: str) -> None:
    """Every value comes back as its text, in order, whatever characters it and its key hold
    (the six attributes first, no level here, the line last)."""
    pairs = read_logfmt(render_logfmt(hit(fields=fields, line=line)))
    assert pairs[-1] == ("line", line)
    expected = [
        "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for v in fields.values()
    ]
    assert [v for _, v in pairs[6:-1]] == expected


# -- templates --------------------------------------------------------------------------------


def test_templates() -> None:
    h = hit(
        level="error",
        fields={"status": 503, "ok": False, "http": {"method": "POST"}, "host": "peer"},
    )
    assert render_template("{ts} {ts_ns}", h) == f"2024-05-01T12:00:00.123Z {TS}"
    assert render_template("{host}/{source}:{partition}:{offset} {topic} {level}", h) == (
        "web-1//var/log/app.log:2:9 app error"
    )
    assert render_template("{status} {ok} {http.method} {fields.host} {nope}|", h) == (
        "503 false POST peer |"
    )
    assert render_template("{fields}", h) == json.dumps(h.fields, separators=(",", ":"))
    assert render_template("{{x}} {line}", h) == "{x} GET /x 200"
    assert render_template("{local}", h) == rfc3339(TS, local=True)
    assert renderer("<{host}>")(h) == "<web-1>"


def test_times() -> None:
    assert rfc3339_ns(TS) == "2024-05-01T12:00:00.123456789Z"
    assert rfc3339(TS) == "2024-05-01T12:00:00.123Z"
    assert rfc3339_ns(10**30) == str(10**30)  # past year 9999: the number, never a crash
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123[+-]\d\d:\d\d", rfc3339(TS, True))


# -- text -------------------------------------------------------------------------------------


def test_text_marks_context_lines() -> None:
    h = hit()
    fields = {f: getattr(h, f) for f in h.__struct_fields__}
    assert render_text(h) == "web-1 /var/log/app.log: GET /x 200"
    assert render_text(ContextHit(**fields, match=True, group=0)) == render_text(h)
    other = ContextHit(**fields, match=False, group=0)
    assert render_text(other) == "web-1 /var/log/app.log- GET /x 200"
    assert styled_text(other, colour=False).plain == render_text(other)
    coloured = styled_text(h, colour=True)
    assert coloured.plain == render_text(h) and coloured.spans  # styled, same text


# -- formats and the printer ------------------------------------------------------------------


def test_parse_format() -> None:
    assert [parse_format(f.upper()) for f in FORMATS] == list(FORMATS)
    assert parse_format("{Host} {line}") == "{Host} {line}"  # a template is kept as typed
    with pytest.raises(InvalidArgument, match="unknown output format 'yaml': use text, raw"):
        parse_format("yaml")


@pytest.mark.parametrize("fmt", [*FORMATS, "{offset} {line}"])
def test_printer_and_encoder_print_the_same_line(fmt: str) -> None:
    out = io.StringIO()
    printer = Printer(fmt, out)
    h = hit(fields={"a": {"b": 1}})
    printer.record(h)
    printer.separator()
    printer.flush()
    separator = "" if fmt == "json" else "--\n"
    assert out.getvalue() == renderer(fmt)(h) + "\n" + separator
    assert encoder_for(fmt)(h) == (renderer(fmt)(h) + "\n").encode()
