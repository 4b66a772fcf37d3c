"""OTLP/HTTP logs: ``POST /v1/logs`` with an ``ExportLogsServiceRequest``, as the OpenTelemetry
SDKs, the OpenTelemetry Collector, Fluent Bit and Vector send it (the OTLP specification,
opentelemetry-proto ``docs/specification.md``, "OTLP/HTTP").

The request: binary protobuf (``Content-Type: application/x-protobuf``) or OTLP's JSON
(``application/json``: protobuf's JSON mapping with camelCase keys, 64-bit integers as
strings, enums as integers, and ``traceId``/``spanId`` in hex, not base64 — those two are turned
into base64 before ``google.protobuf.json_format`` reads the rest), optionally gzip
(``Content-Encoding: gzip``). The messages are ``opentelemetry-proto``'s classes.

Mapping of each ``LogRecord`` to a record:

- ``ts``: ``time_unix_nano``, else ``observed_time_unix_nano``, else the arrival time; a time
  past the 64-bit signed range rejects the record (partial success);
- ``line``: the body when it is a string; any other body as JSON (a map as an object, an array
  as a list, bytes as base64); no body: ``event_name``, else empty;
- ``host``: the resource's ``host.name``, else the sender's IP address;
- ``source``: the resource's ``service.name`` (empty when the resource has none);
- ``level``: ``severity_number`` by its ranges (1-4 trace, 5-8 debug, 9-12 info, 13-16 warn,
  17-20 error, 21-24 fatal), else ``severity_text`` through the shared level spellings;
- ``fields``, flat, later ones winning: the resource's attributes, ``otel.scope.name`` and
  ``otel.scope.version`` (as OpenTelemetry names them outside OTLP) and the scope's
  attributes, the record's attributes, then ``trace_id`` and ``span_id`` (lower-case hex),
  ``trace_flags`` (the low byte of ``flags``, when set), ``severity_text``,
  ``severity_number`` and ``event_name`` when present. Attribute values keep their type
  (string, int, double, bool; an array as a list; bytes as base64); a map-valued attribute is
  flattened into dotted names (``http`` ``{method: GET}`` → ``http.method``).

A ``trace_id`` that is not 16 bytes or a ``span_id`` that is not 8 rejects its record.

Answers (OTLP/HTTP Response): 200 with an ``ExportLogsServiceResponse`` in the request's
encoding once the records are durable (``partial_success`` with ``rejected_log_records`` and
the first reason when some were rejected); failures carry a ``google.rpc.Status`` with the
message (``code`` omitted, as the specification allows): 400 undecodable, 401 no or a wrong
write token, 413 over ``max_message_bytes`` before or after gzip, 415 another media type or
coding, 503 with ``Retry-After`` when the collector is behind (retried by clients).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any, Final

import msgspec
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.inputs.http_common import (
    BadRequest,
    Body,
    Decoded,
    HttpInput,
    Refusal,
    TooLarge,
    UnsupportedMediaType,
    gunzip,
)
from parsers.levels import normalize_level
from wharf.record import LEVELS, Record

__all__ = ["OtlpInput", "decode_otlp"]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
# Nesting OTLP JSON may have (maps in arrays in maps ...); json_format refuses deeper.
_MAX_JSON_DEPTH: Final = 100
# The level of each severity_number: 0 is unspecified, then four numbers per level.
_SEVERITY_LEVELS: Final[tuple[str | None, ...]] = (None, *(lv for lv in LEVELS for _ in range(4)))
_TS_LIMIT: Final = 1 << 63  # a record's ts is a signed 64-bit count of nanoseconds
_TRACE_ID_BYTES: Final = 16
_SPAN_ID_BYTES: Final = 8
_json_decoder: Final = msgspec.json.Decoder()


def _value(v: AnyValue) -> Any:
    """An attribute or body value as a plain Python value."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def _flatten(attributes: Iterable[KeyValue], out: dict[str, Any], prefix: str = "") -> None:
    """Attributes into ``out`` under flat names (a map-valued one as ``key.subkey``)."""
    for kv in attributes:
        if kv.value.WhichOneof("value") == "kvlist_value":
            _flatten(kv.value.kvlist_value.values, out, f"{prefix}{kv.key}.")
        else:
            out[prefix + kv.key] = _value(kv.value)


def _line(body: AnyValue, event_name: str) -> str:
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return body.string_value
    if kind is None:
        return event_name
    return msgspec.json.encode(_value(body)).decode()


def _records(request: ExportLogsServiceRequest, body: Body) -> Decoded:
    out = body.decoded()
    for rl in request.resource_logs:
        resource: dict[str, Any] = {}
        _flatten(rl.resource.attributes, resource)
        host = resource.get("host.name")
        if not isinstance(host, str) or not host:
            host = body.peer
        source = resource.get("service.name")
        if not isinstance(source, str):
            source = ""
        for sl in rl.scope_logs:
            scope = dict(resource)
            if sl.scope.name:
                scope["otel.scope.name"] = sl.scope.name
            if sl.scope.version:
                scope["otel.scope.version"] = sl.scope.version
            _flatten(sl.scope.attributes, scope)
            for lr in sl.log_records:
                ts = lr.time_unix_nano or lr.observed_time_unix_nano or body.received_ns
                if ts >= _TS_LIMIT:
                    out.reject(1, f"time_unix_nano {ts} is past the year 2262")
                    continue
                fields = dict(scope)
                _flatten(lr.attributes, fields)
                if lr.trace_id:
                    if len(lr.trace_id) != _TRACE_ID_BYTES:
                        out.reject(1, f"a trace_id of {len(lr.trace_id)} bytes (16 expected)")
                        continue
                    fields["trace_id"] = lr.trace_id.hex()
                if lr.span_id:
                    if len(lr.span_id) != _SPAN_ID_BYTES:
                        out.reject(1, f"a span_id of {len(lr.span_id)} bytes (8 expected)")
                        continue
                    fields["span_id"] = lr.span_id.hex()
                if lr.flags & 0xFF:
                    fields["trace_flags"] = lr.flags & 0xFF
                number = int(lr.severity_number)
                level = _SEVERITY_LEVELS[number] if 0 <= number < len(_SEVERITY_LEVELS) else None
                if number:
                    fields["severity_number"] = number
                if lr.severity_text:
                    fields["severity_text"] = lr.severity_text
                    if level is None:
                        level = normalize_level(lr.severity_text)
                if lr.event_name:
                    fields["event_name"] = lr.event_name
                out.add(
                    Record(
                        ts=ts,
                        line=_line(lr.body, lr.event_name),
                        host=host,
                        source=source,
                        fields=fields,
                        level=level,
                    )
                )
    return out


def _hex_ids_to_base64(doc: Any) -> None:
    """OTLP JSON's hex ``traceId``/``spanId`` of every log record as the base64 that
    protobuf's JSON mapping reads (in place); ``BadRequest`` for one that is not hex."""
    if not isinstance(doc, dict):
        return
    for i, rl in enumerate(_items(doc, "resourceLogs", "resource_logs")):
        for j, sl in enumerate(_items(rl, "scopeLogs", "scope_logs")):
            for k, lr in enumerate(_items(sl, "logRecords", "log_records")):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = lr.get(key)
                    if not isinstance(value, str):
                        continue
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        where = f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}].{key}"
                        raise BadRequest(f"{where} {value[:40]!r} is not hex") from None
                    lr[key] = base64.b64encode(raw).decode()


def _items(obj: Any, *keys: str) -> list[dict[str, Any]]:
    """The dicts in the list ``obj[key]`` (the first key present), or none."""
    if not isinstance(obj, dict):
        return []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return [x for x in value if isinstance(x, dict)]
    return []


def decode_otlp(body: Body) -> Decoded:
    """The records of one OTLP/HTTP logs request (pure), or a ``Refusal``."""
    data = body.data
    if body.content_encoding == "gzip":
        data = gunzip(data, body.limit)
    elif len(data) > body.limit:
        raise TooLarge(f"the body is over this input's max_message_bytes ({body.limit})")
    request = ExportLogsServiceRequest()
    if body.content_type == PROTOBUF:
        try:
            request.ParseFromString(data)
        except DecodeError as exc:
            raise BadRequest(f"the body is not an OTLP ExportLogsServiceRequest: {exc}") from None
    else:
        try:
            doc = _json_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadRequest("the body is not an OTLP ExportLogsServiceRequest: not a JSON object")
        _hex_ids_to_base64(doc)
        try:
            json_format.ParseDict(
                doc, request, ignore_unknown_fields=True, max_recursion_depth=_MAX_JSON_DEPTH
            )
        except (json_format.ParseError, RecursionError) as exc:
            raise BadRequest(f"the body is not an OTLP ExportLogsServiceRequest: {exc}") from None
    return _records(request, body)


class OtlpInput(HttpInput):
    """OTLP/HTTP logs on ``POST /v1/logs`` (see the module docstring)."""

    path = "/v1/logs"

    def check_headers(self, content_type: str, content_encoding: str) -> None:
        if content_type not in (PROTOBUF, JSON):
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not OTLP: {PROTOBUF} or {JSON}"
            )
        if content_encoding not in ("", "identity", "gzip"):
            raise UnsupportedMediaType(
                f"Content-Encoding {content_encoding!r} is not supported: gzip or none"
            )

    def decode(self, body: Body) -> Decoded:
        return decode_otlp(body)

    def accepted(self, decoded: Decoded, content_type: str) -> web.Response:
        response = ExportLogsServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_log_records = decoded.rejected
            response.partial_success.error_message = (
                f"{decoded.rejected} log records rejected: {decoded.reason}"
            )
        return _answer(response, content_type)

    def refused(self, refusal: Refusal, content_type: str) -> web.Response:
        return _answer(status_pb2.Status(message=str(refusal)), content_type)


def _answer(message: Any, content_type: str) -> web.Response:
    """``message`` in the request's encoding (protobuf unless the request was JSON)."""
    if content_type == JSON:
        text = json_format.MessageToJson(message, indent=None)
        return web.Response(body=text.encode(), content_type=JSON)
    return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)
