"""``wharf.api``: every request survives ``from_params(to_params(x))`` and JSON, every row
survives JSON and ``decode_row``, and bad parameters name themselves."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wharf import api
from wharf.errors import InvalidArgument, LocalError, UnknownTopic, code_of, http_status

_topics = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
# Query text may be anything but a NUL-free str (a query string cannot carry what HTTP cannot).
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_globs = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=","), min_size=1, max_size=12
)
_levels = st.sampled_from(["error", "warn+", "none", "info", "debug+"])
_ns = st.integers(min_value=-(2**62), max_value=2**62)


@st.composite
def _times(draw: st.DrawFn) -> tuple[int | None, int | None]:
    since = draw(st.none() | _ns)
    until = draw(st.none() | _ns)
    if since is not None and until is not None and since >= until:
        since, until = until - 1, since + 1
    return since, until


@st.composite
def _filters(draw: st.DrawFn) -> dict[str, Any]:
    since, until = draw(_times())
    return {
        "topics": tuple(draw(st.lists(_topics, max_size=3))),
        "q": draw(_text),
        "fixed": draw(st.booleans()),
        "icase": draw(st.booleans()),
        "invert": draw(st.booleans()),
        "hosts": tuple(draw(st.lists(_globs, max_size=2))),
        "sources": tuple(draw(st.lists(_globs, max_size=2))),
        "levels": tuple(draw(st.lists(_levels, max_size=2))),
        "where": draw(_text),
        "since": since,
        "until": until,
    }


@st.composite
def search_requests(draw: st.DrawFn) -> api.SearchRequest:
    context = draw(st.booleans())
    count = draw(st.booleans())
    return api.SearchRequest(
        **draw(_filters()),
        limit=draw(st.none() | st.integers(min_value=1, max_value=10**9)),
        order="asc" if context else draw(st.sampled_from(["asc", "desc"])),
        count=count,
        files=not count and draw(st.booleans()),
        before=draw(st.integers(0, api.MAX_CONTEXT)) if context else None,
        after=draw(st.none() | st.integers(0, api.MAX_CONTEXT)) if context else None,
        progress=draw(st.booleans()),
    )


@st.composite
def tail_requests(draw: st.DrawFn) -> api.TailRequest:
    return api.TailRequest(
        **draw(_filters()),
        n=draw(st.integers(0, api.MAX_BACKFILL)),
        cursor=draw(st.from_regex(r"([a-z]+:[0-9]+:[0-9]+)?", fullmatch=True)),
    )


requests = st.one_of(
    search_requests(),
    tail_requests(),
    st.builds(
        api.ConsumeRequest,
        offset=st.none() | st.integers(0, 2**62),
        max_bytes=st.none() | st.integers(1, 2**40),
    ),
    st.builds(api.OffsetRequest, time=_ns),
)


@given(requests)
def test_params_round_trip(req: api.Params) -> None:
    assert type(req).from_params(req.to_params()) == req


@given(requests)
def test_json_round_trip(req: api.Params) -> None:
    assert msgspec.json.decode(msgspec.json.encode(req), type=type(req)) == req


_fields = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    max_size=4,
)
_hits = st.builds(
    api.Hit,
    topic=_topics,
    partition=st.integers(0, 1023),
    offset=st.integers(0, 2**62),
    ts=_ns,
    host=_text,
    source=_text,
    line=_text,
    fields=_fields,
    level=st.none() | st.sampled_from(["info", "error"]),
)
_stats = st.builds(
    api.SearchStats,
    matched=st.integers(0, 10**9),
    batches_total=st.integers(0, 10**9),
    batches_read=st.integers(0, 10**9),
    bytes_read=st.integers(0, 10**12),
    bytes_decompressed=st.integers(0, 10**12),
    errors=st.integers(0, 10),
    error_messages=st.lists(_text, max_size=2),
    elapsed_ms=st.floats(0, 10**6, allow_nan=False),
)
rows = st.one_of(
    _hits,
    st.builds(
        lambda h, m, g: api.ContextHit(**msgspec.structs.asdict(h), match=m, group=g),
        _hits,
        st.booleans(),
        st.integers(0, 10**6),
    ),
    st.builds(api.PartitionCount, _topics, st.integers(0, 1023), st.integers(0, 10**9)),
    st.builds(api.FileCount, _topics, _text, _text, st.integers(0, 10**9)),
    st.builds(
        api.Progress,
        st.builds(
            api.ProgressInfo,
            st.integers(0, 10**12),
            st.integers(0, 10**12),
            st.integers(0, 10**9),
            st.integers(0, 10**9),
            st.floats(0, 10**6, allow_nan=False),
        ),
    ),
    st.builds(api.Done, done=st.just(True), count=st.none() | st.integers(0, 10**9), stats=_stats),
    st.builds(api.Heartbeat, st.just(True), _text),
    st.builds(api.ConsumeEnd, st.integers(0, 2**62), st.integers(0, 2**62)),
)


@given(rows)
def test_rows_round_trip_through_ndjson(row: api.Row) -> None:
    line = api.encode_row(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert api.decode_row(line) == row


def test_an_error_line_raises_the_error_it_names() -> None:
    line = api.encode_row(api.error_row(UnknownTopic("no topic 'x'")))
    with pytest.raises(UnknownTopic, match="no topic 'x'"):
        api.decode_row(line)


def test_a_foreign_exception_is_named_by_its_type_only() -> None:
    body = api.error_row(KeyError("secret path /etc/x"))
    assert body.error == "internal error: KeyError" and body.code == code_of(KeyError())


def test_defaults_send_no_parameters() -> None:
    assert api.SearchRequest().to_params() == []
    assert api.SearchRequest(topics=("a", "b"), icase=True).to_params() == [
        ("topic", "a"),
        ("topic", "b"),
        ("icase", "1"),
    ]


def test_comma_lists_and_case() -> None:
    req = api.SearchRequest.from_params(
        [("topic", "a,b"), ("level", "warn+, none"), ("host", "x,y"), ("order", "DESC")]
    )
    assert req.topics == ("a", "b") and req.levels == ("warn+", "none")
    assert req.hosts == ("x,y",) and req.order == "desc"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("nope", "1")], "unknown parameter 'nope'"),
        ([("limit", "x")], "parameter limit='x' is not an integer"),
        ([("limit", "0")], "parameter limit=0 must be >= 1"),
        ([("icase", "maybe")], "parameter icase='maybe' is not a boolean"),
        ([("order", "up")], "parameter order='up' must be asc or desc"),
        ([("q", "a"), ("q", "b")], "parameter q is given 2 times"),
        ([("before", "1001")], "parameter before=1001 exceeds 1000"),
        ([("count", "1"), ("files", "1")], "count=1 and files=1 exclude each other"),
        ([("after", "1"), ("order", "desc")], "context lines (before/after) need order=asc"),
        ([("since", "5"), ("until", "5")], "empty time range"),
        ([("topic", "Bad/Name")], "invalid topic name 'Bad/Name'"),
    ],
)
def test_bad_parameters_name_themselves(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(LocalError) as info:
        api.SearchRequest.from_params(pairs)
    assert message in str(info.value)
    assert http_status(info.value) == 400


def test_tail_and_consume_limits() -> None:
    with pytest.raises(InvalidArgument, match="parameter n=10001 exceeds 10000"):
        api.TailRequest.from_params([("n", "10001")])
    with pytest.raises(InvalidArgument, match="parameter offset=-1 must be >= 0"):
        api.ConsumeRequest.from_params([("offset", "-1")])
    with pytest.raises(InvalidArgument, match="parameter time is required"):
        api.OffsetRequest.from_params([])
    assert api.TailRequest.from_params([("from", "t:0:5")]).cursor == "t:0:5"
