"""The OTLP/HTTP logs decoder, pure: protobuf and JSON requests to records, the mapping of
every part of a ``LogRecord``, and garbage that may only end in our ``Refusal``."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from collector.inputs.http_common import BadRequest, Body, Refusal, TooLarge, gunzip
from collector.inputs.otlp import JSON, PROTOBUF, decode_otlp
from collector.inputs.sink import record_size
from wharf.record import Record

EXAMPLE = Path(__file__).parent / "data" / "otlp_logs_example.json"
ARRIVAL = 1_800_000_000_000_000_000
LIMIT = 1 << 20


def body(data: bytes, content_type: str = PROTOBUF, encoding: str = "") -> Body:
    return Body(data, content_type, encoding, "10.1.2.3", ARRIVAL, LIMIT)


def kv(key: str, **value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))  # type: ignore[arg-type]


def request(*records: LogRecord, resource: list[KeyValue] | None = None) -> bytes:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(resource or [])
    sl = rl.scope_logs.add()
    sl.scope.name = "billing.worker"
    sl.log_records.extend(records)
    return req.SerializeToString()


def test_the_specifications_json_example() -> None:
    """opentelemetry-proto's own example request (open-telemetry/opentelemetry-proto @ ac2c4b5
    : examples/logs.json, Apache-2.0): hex ids, int64 as a string, every attribute type."""
    (rec,) = decode_otlp(body(EXAMPLE.read_bytes(), JSON)).records
    assert rec.ts == 1544712660300000000
    assert rec.line == "Example log record"
    assert rec.host == "10.1.2.3"  # no host.name: the sender's address
    assert rec.source == "my.service"
    assert rec.level == "info"  # severity_number 10 is INFO2
    assert rec.fields == {
        "service.name": "my.service",
        "otel.scope.name": "my.library",
        "otel.scope.version": "1.0.0",
        "my.scope.attribute": "some scope attribute",
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute.some.map.key": "some value",
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
        "severity_number": 10,
        "severity_text": "Information",
    }


def test_json_and_protobuf_of_one_request_decode_alike() -> None:
    doc = json.loads(EXAMPLE.read_text())
    for lr in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:  # base64 for json_format
        lr["traceId"] = "W47/95gDgQPSabYzgT/GDA=="
        lr["spanId"] = "7uGbfsPBsXQ="
    proto = json_format.ParseDict(doc, ExportLogsServiceRequest()).SerializeToString()
    from_json = decode_otlp(body(EXAMPLE.read_bytes(), JSON)).records
    from_proto = decode_otlp(body(proto)).records
    assert from_json == from_proto


def test_mapping_of_times_levels_bodies_and_ids() -> None:
    records = decode_otlp(
        body(
            request(
                LogRecord(
                    time_unix_nano=5,
                    observed_time_unix_nano=6,
                    severity_number=21,
                    body=AnyValue(string_value="boom"),
                    trace_id=bytes(range(16)),
                    span_id=bytes(range(8)),
                    flags=0x101,
                ),
                LogRecord(observed_time_unix_nano=6, severity_text="Warning"),
                LogRecord(
                    body=AnyValue(
                        kvlist_value={"values": [kv("n", int_value=3), kv("b", bytes_value=b"\1")]}
                    ),
                    event_name="order.placed",
                    attributes=[
                        kv("http", kvlist_value={"values": [kv("method", string_value="GET")]})
                    ],
                ),
                LogRecord(event_name="only.event", severity_number=99, severity_text="nonsense"),
                resource=[
                    kv("host.name", string_value="web-7"),
                    kv("service.name", string_value="api"),
                ],
            )
        )
    ).records
    fatal, warn, structured, event = records
    assert (fatal.ts, fatal.level, fatal.line, fatal.host, fatal.source) == (
        5,
        "fatal",
        "boom",
        "web-7",
        "api",
    )
    assert fatal.fields["trace_id"] == bytes(range(16)).hex()
    assert fatal.fields["span_id"] == "0001020304050607"
    assert fatal.fields["trace_flags"] == 1  # the low byte of flags
    assert fatal.fields["otel.scope.name"] == "billing.worker"
    assert (warn.ts, warn.level, warn.line) == (6, "warn", "")  # observed time; severity_text
    assert structured.ts == ARRIVAL  # no time at all: arrival
    assert json.loads(structured.line) == {"n": 3, "b": "AQ=="}
    assert structured.fields["http.method"] == "GET"
    assert structured.fields["event_name"] == "order.placed"
    assert (event.line, event.level) == ("only.event", None)  # no body: the event's name


def test_records_that_cannot_be_stored_are_rejected_alone() -> None:
    out = decode_otlp(
        body(
            request(
                LogRecord(time_unix_nano=2**64 - 1, body=AnyValue(string_value="far future")),
                LogRecord(trace_id=b"short", body=AnyValue(string_value="bad trace id")),
                LogRecord(span_id=b"\0" * 9, body=AnyValue(string_value="bad span id")),
                LogRecord(time_unix_nano=7, body=AnyValue(string_value="fine")),
            )
        )
    )
    assert [r.line for r in out.records] == ["fine"]
    assert out.rejected == 3
    assert "2262" in out.reason


def test_gzip_is_inflated_within_the_limit() -> None:
    data = request(LogRecord(time_unix_nano=1, body=AnyValue(string_value="zipped")))
    out = decode_otlp(body(gzip.compress(data) + gzip.compress(b""), encoding="gzip"))
    assert [r.line for r in out.records] == ["zipped"]
    bomb = gzip.compress(b"\0" * (LIMIT + 1))
    with pytest.raises(TooLarge, match="inflates to more than"):
        decode_otlp(body(bomb, encoding="gzip"))
    with pytest.raises(TooLarge):
        decode_otlp(body(b"\0" * (LIMIT + 1)))
    with pytest.raises(BadRequest, match="not valid gzip"):
        decode_otlp(body(b"plain text", encoding="gzip"))
    with pytest.raises(BadRequest, match="truncated"):
        decode_otlp(body(gzip.compress(data)[:-12], encoding="gzip"))


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF, "not an OTLP ExportLogsServiceRequest"),
        (b"{not json", JSON, "not JSON"),
        (b"[1, 2]", JSON, "not a JSON object"),
        (b'{"resourceLogs": 5}', JSON, "not an OTLP ExportLogsServiceRequest"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}',
            JSON,
            r"resourceLogs\[0\].scopeLogs\[0\].logRecords\[0\].traceId 'xyz' is not hex",
        ),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
            JSON,
            "timeUnixNano",
        ),
    ],
)
def test_undecodable_requests_say_why(data: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_otlp(body(data, content_type))


def test_unknown_json_fields_are_ignored() -> None:
    """OTLP/JSON receivers MUST ignore fields with unknown names (the specification)."""
    doc = (
        b'{"resourceLogs": [{"future": 1, "scopeLogs": [{"logRecords": '
        b'[{"body": {"stringValue": "x"}, "newField": true}]}]}]}'
    )
    assert [r.line for r in decode_otlp(body(doc, JSON)).records] == ["x"]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = (
        '{"kvlistValue": {"values": [{"key": "k", "value": ' * 200
        + '{"intValue": 1}'
        + "}]}}" * 200
    )
    doc = '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": ' + deep + "}]}]}]}"
    with pytest.raises(BadRequest):
        decode_otlp(body(doc.encode(), JSON))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2048),
    content_type=st.sampled_from([PROTOBUF, JSON]),
    encoding=st.sampled_from(["", "gzip"]),
)
def test_arbitrary_bytes_end_in_a_refusal_or_records(
    data: bytes, content_type: str, encoding: str
) -> None:
    try:
        out = decode_otlp(body(data, content_type, encoding))
    except Refusal:
        return
    assert all(0 <= r.ts < 2**63 for r in out.records)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.binary(max_size=3000), min_size=1, max_size=3),
    repeat=st.sampled_from([1, 1000]),
)
def test_gunzip_inflates_every_member(parts: list[bytes], repeat: int) -> None:
    """Members past the inflate step (1 MiB) and several members in one body, as Go's and
    Python's gzip readers take them."""
    data = [p * repeat for p in parts]
    assert gunzip(b"".join(gzip.compress(p) for p in data), 16 << 20) == b"".join(data)


def test_records_are_bounded_by_what_the_sink_could_hold() -> None:
    """A small request can make large records: 20,000 resource attributes are repeated in
    every one of 2,000 records' fields (under 1 MB of protobuf; 40 million fields decoded).
    Decoding stops with 413 as soon as the records take more than max_pending_bytes."""
    resource = [kv(f"attribute.{i:05d}", string_value="v") for i in range(20_000)]
    data = request(*(LogRecord(time_unix_nano=1) for _ in range(2000)), resource=resource)
    assert len(data) < 1 << 20
    bounded = Body(data, PROTOBUF, "", "10.1.2.3", ARRIVAL, 4 << 20, max_decoded=1 << 20)
    with pytest.raises(TooLarge, match=r"more than 1048576 bytes in memory .* after 3 of them"):
        decode_otlp(bounded)
    resource_once = request(LogRecord(time_unix_nano=1), resource=resource)
    fits = Body(resource_once, PROTOBUF, "", "10.1.2.3", ARRIVAL, 4 << 20, max_decoded=1 << 20)
    assert len(decode_otlp(fits).records) == 1


def test_nested_field_values_are_charged_for_their_items() -> None:
    """The sink charges a list or map attribute for what it holds, so batches of such records
    stay within the batch format's limits."""
    small = Record(ts=1, line="x", fields={"tags": ["a"]})
    large = Record(ts=1, line="x", fields={"tags": ["a" * 1000] * 100, "m": {"k": "v" * 500}})
    assert record_size(large) - record_size(small) > 100_000
