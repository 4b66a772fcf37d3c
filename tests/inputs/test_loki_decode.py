"""The Loki push decoder, pure: JSON and snappy-compressed protobuf pushes to records, the
Prometheus label sets of protobuf streams, Loki's validation texts, and garbage that may only
end in our ``Refusal``."""

from __future__ import annotations

import gzip
import json

import cramjam
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.inputs.http_common import BadRequest, Body, Refusal, TooLarge
from collector.inputs.loki import (
    JSON,
    MISSING_LABELS,
    DuplicateLabel,
    decode_loki,
    label_text,
    parse_labels,
)
from collector.inputs.proto.push_pb2 import EntryAdapter, LabelPairAdapter, PushRequest

PROTOBUF = "application/x-protobuf"
LIMIT = 1 << 20
T0 = 1_700_000_000_123_456_789


def body(data: bytes, content_type: str = PROTOBUF, encoding: str = "") -> Body:
    return Body(data, content_type, encoding, "10.9.8.7", 0, LIMIT)


def push_json(*streams: dict[str, object]) -> bytes:
    return json.dumps({"streams": list(streams)}).encode()


def push_proto(*streams: tuple[str, list[EntryAdapter]]) -> bytes:
    req = PushRequest()
    for labels, entries in streams:
        s = req.streams.add()
        s.labels = labels
        s.entries.extend(entries)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def entry(ns: int, line: str, **metadata: str) -> EntryAdapter:
    return EntryAdapter(
        timestamp=Timestamp(seconds=ns // 10**9, nanos=ns % 10**9),
        line=line,
        structuredMetadata=[LabelPairAdapter(name=k, value=v) for k, v in metadata.items()],
    )


def test_json_push_maps_labels_metadata_host_source_and_level() -> None:
    data = push_json(
        {
            "stream": {"job": "varlogs", "host": "web-1", "level": "error"},
            "values": [[str(T0), "first"], [str(T0 + 1), "second", {"trace_id": "abc"}]],
        },
        {"stream": {"filename": "/var/log/app.log", "hostname": "db-2"}, "values": [["5", "x"]]},
        {"stream": {"app": "api", "env": "prod", "severity": "warning"}, "values": [["6", "y"]]},
    )
    first, second, by_file, by_set = decode_loki(body(data, JSON)).records
    assert (first.ts, first.line, first.host, first.source, first.level) == (
        T0,
        "first",
        "web-1",
        "varlogs",
        "error",
    )
    assert first.fields == {"job": "varlogs", "host": "web-1", "level": "error"}
    assert second.fields["trace_id"] == "abc"  # structured metadata joins the labels
    assert (by_file.host, by_file.source, by_file.level) == ("db-2", "/var/log/app.log", None)
    assert (by_set.host, by_set.source, by_set.level) == (
        "10.9.8.7",  # no host label: the sender's address
        '{app="api", env="prod", severity="warning"}',
        "warn",
    )


def test_protobuf_push_decodes_as_its_json_twin() -> None:
    proto = push_proto(
        ('{job="varlogs", host="web-1", level="error"}', [entry(T0, "first")]),
        ('{job="varlogs",host="web-1",level="error"}', [entry(T0 + 1, "second", trace_id="abc")]),
    )
    twin = push_json(
        {
            "stream": {"job": "varlogs", "host": "web-1", "level": "error"},
            "values": [[str(T0), "first"], [str(T0 + 1), "second", {"trace_id": "abc"}]],
        }
    )
    assert decode_loki(body(proto)).records == decode_loki(body(twin, JSON)).records
    gzipped = gzip.compress(proto)
    assert decode_loki(body(gzipped, encoding="gzip")).records == decode_loki(body(proto)).records


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ('{job="varlogs"}', {"job": "varlogs"}),
        (' { a = "1" ,b="2", } ', {"a": "1", "b": "2"}),
        ('{q="say \\"hi\\"\\n", b="back\\\\slash"}', {"q": 'say "hi"\n', "b": "back\\slash"}),
        ('{a="", b="kept"}', {"b": "kept"}),  # an empty value is no label
        ('{a="{,}="}', {"a": "{,}="}),
        ("{}", {}),
    ],
)
def test_label_sets(text: str, labels: dict[str, str]) -> None:
    assert parse_labels(text) == labels


@pytest.mark.parametrize(
    "text", ['job="x"', '{job="x"', "{job=x}", '{1job="x"}', '{a="1" b="2"}', '{a="\\q"}']
)
def test_bad_label_sets(text: str) -> None:
    with pytest.raises(ValueError, match=r"label set|pair|escape"):
        parse_labels(text)
    with pytest.raises(BadRequest, match="couldn't parse labels"):
        decode_loki(body(push_proto((text, [entry(1, "x")]))))


def test_label_text_round_trips() -> None:
    labels = {"b": 'quote " and \\', "a": "1"}
    assert label_text(labels) == '{a="1", b="quote \\" and \\\\"}'
    assert parse_labels(label_text(labels)) == labels
    with pytest.raises(DuplicateLabel):
        parse_labels('{a="1", a="2"}')


def test_streams_loki_refuses_are_counted_and_the_rest_kept() -> None:
    """Loki's validation refuses a stream, not the request: no labels, a duplicate label, a
    time outside the 64-bit range (Loki's texts, grafana/loki pkg/validation/validate.go)."""
    out = decode_loki(
        body(
            push_proto(
                ("{}", [entry(1, "no labels"), entry(2, "no labels")]),
                ('{a="1", a="2"}', [entry(3, "dup")]),
                ('{job="ok"}', [entry(4, "kept")]),
                ('{job="ok"}', [EntryAdapter(timestamp=Timestamp(seconds=10**11), line="far")]),
            )
        )
    )
    assert [r.line for r in out.records] == ["kept"]
    assert out.rejected == 4
    assert out.reason == MISSING_LABELS
    dup = decode_loki(body(push_proto(('{a="1", a="2"}', [entry(3, "dup")]))))
    assert dup.reason == "stream '{a=\"1\", a=\"2\"}' has duplicate label name: 'a'"
    far = decode_loki(body(push_proto(('{job="ok"}', [entry(10**20, "far")]))))
    assert far.reason.startswith("entry for stream '{job=\"ok\"}' has timestamp too new")
    empty = decode_loki(body(push_json({"stream": {}, "values": [["1", "x"]]}), JSON))
    assert (empty.records, empty.rejected, empty.reason) == ([], 1, MISSING_LABELS)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"{nope", "not a Loki push request"),
        (
            b'{"streams": [{"stream": {"a": 1}}]}',
            r"Expected `str`, got `int` - at `\$.streams\[0\]",
        ),
        (b'{"streams": [{"stream": {"a-b": "1"}}]}', "couldn't parse labels: invalid label name"),
        (b'{"streams": [{"stream": {"a": "1"}, "values": [["1"]]}]}', "at least 2 and up to 3"),
        (b'{"streams": [{"stream": {"a": "1"}, "values": [["1", "x", {}, {}]]}]}', "up to 3"),
        (b'{"streams": [{"stream": {"a": "1"}, "values": [["soon", "x"]]}]}', "timestamp"),
        (b'{"streams": [{"stream": {"a": "1"}, "values": [["1_000", "x"]]}]}', "timestamp"),
        (
            b'{"streams": [{"stream": {"a": "1"}, "values": [["99999999999999999999", "x"]]}]}',
            "timestamp",
        ),
        (b'{"streams": [{"stream": {"a": "1"}, "values": [[{}, "x"]]}]}', "timestamp"),
        (
            b'{"streams": [{"stream": {"a": "1"}, "values": [["1", {}]]}]}',
            "the line is not a string",
        ),
        (
            b'{"streams": [{"stream": {"a": "1"}, "values": [["1", "x", "meta"]]}]}',
            "structured metadata",
        ),
    ],
)
def test_undecodable_json_says_why(doc: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_loki(body(doc, JSON))


def test_snappy_and_gzip_bombs_are_refused_before_they_inflate() -> None:
    # A snappy block names its length first: 1 GiB claimed by 7 bytes is refused unread.
    claim = bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"\x00\x00"
    with pytest.raises(TooLarge, match=r"request body too large: .* \(1073741824 vs 1048576\)"):
        decode_loki(body(claim))
    real = bytes(cramjam.snappy.compress_raw(b"\0" * (LIMIT + 1)))
    assert len(real) < LIMIT // 10
    with pytest.raises(TooLarge):
        decode_loki(body(real))
    with pytest.raises(TooLarge, match="inflates to more than"):
        decode_loki(body(gzip.compress(b"\0" * (LIMIT + 1)), JSON, "gzip"))
    with pytest.raises(BadRequest, match="not snappy-compressed"):
        decode_loki(body(b"\x10not snappy at all"))
    req = PushRequest(streams=[{"labels": '{a="1"}'}]).SerializeToString()
    with pytest.raises(BadRequest, match="not a Loki PushRequest"):
        decode_loki(body(bytes(cramjam.snappy.compress_raw(req[:-2] + b"\xff\xff"))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2048),
    content_type=st.sampled_from([PROTOBUF, JSON, ""]),
    encoding=st.sampled_from(["", "gzip", "snappy"]),
)
def test_arbitrary_bytes_end_in_a_refusal_or_records(
    data: bytes, content_type: str, encoding: str
) -> None:
    try:
        out = decode_loki(body(data, content_type, encoding))
    except Refusal:
        return
    assert all(-(2**63) <= r.ts < 2**63 for r in out.records)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
        st.text(min_size=1, max_size=20),
        max_size=5,
    )
)
def test_printed_label_sets_parse_back(labels: dict[str, str]) -> None:
    assert parse_labels(label_text(labels)) == labels


def test_labels_repeated_in_every_record_are_bounded() -> None:
    """A stream's labels go into every entry's fields: 5,000 labels over 5,000 entries is a
    small push and 25 million fields. Decoding stops with 413 once the records take more than
    max_pending_bytes."""
    labels = "{" + ", ".join(f'label_{i:04d}="v"' for i in range(5000)) + "}"
    data = push_proto((labels, [entry(i, "") for i in range(5000)]))
    assert len(data) < LIMIT
    bounded = Body(data, PROTOBUF, "", "10.9.8.7", 0, LIMIT, max_decoded=1 << 20)
    with pytest.raises(TooLarge, match="in memory"):
        decode_loki(bounded)
