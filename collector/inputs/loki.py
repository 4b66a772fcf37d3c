"""Loki push: ``POST /loki/api/v1/push``, as Promtail, Grafana Alloy, Fluent Bit's and Vector's
``loki`` outputs and the Loki client libraries send it (Loki's own handler,
grafana/loki ``pkg/loghttp/push/push.go``, is the reference for what is accepted).

Two encodings, chosen by ``Content-Type`` as Loki chooses:

- ``application/json``: ``{"streams": [{"stream": {LABELS}, "values": [["NS", "LINE"],
  ["NS", "LINE", {STRUCTURED METADATA}], ...]}]}`` with the time as a string of nanoseconds;
- anything else (``application/x-protobuf``, or no type): a ``logproto.PushRequest`` compressed
  with snappy's block format (``collector/inputs/proto/push.proto``, generated classes), whose
  streams carry their labels as a Prometheus label set ``{job="varlogs", host="web-1"}``.

``Content-Encoding: gzip`` is inflated first (bounded like every body); ``snappy`` says what
the protobuf body is anyway and changes nothing, as in Loki. The snappy block names its own
length first, so a body that would inflate past ``max_message_bytes`` is refused (413) before
anything is inflated.

Mapping of each entry to a record:

- ``ts``: the entry's time (nanoseconds);
- ``line``: the entry's line;
- ``host``: the ``host`` label, else ``hostname``, else the sender's IP address;
- ``source``: the ``job`` label, else ``filename``, else the whole label set as Loki prints it
  (``{app="api", env="prod"}``, sorted);
- ``fields``: the stream's labels, then the entry's structured metadata (which wins), all
  strings; a label with an empty value is no label (Prometheus' rule);
- ``level``: from those fields by the shared level keys (``level``, ``severity``, ...: what
  Loki clients put in a label, ``python-logging-loki``'s ``severity`` among them).

Answers, as Loki gives them: 204 once every record is durable; errors as plain text with
Loki's wording where Loki has one: 400 for what does not decode (``couldn't parse labels:
...``, ``error reading entry timestamp``, ``Content-Encoding "br" not supported``), 400 too
after storing the other streams when a stream breaks Loki's validation (``error at least one
label pair is required per stream``, ``stream '{...}' has duplicate label name: 'a'``, a time
outside the 64-bit range: ``entry for stream '{...}' has timestamp too new: ...``), 413 over
``max_message_bytes`` before or after decompressing, 401 without a valid write token, 503
with ``Retry-After`` when the collector is behind.
"""

from __future__ import annotations

import json
import re
from typing import Final

import cramjam
import msgspec
from aiohttp import web
from google.protobuf.message import DecodeError

from collector.inputs.http_common import (
    BadRequest,
    Body,
    Decoded,
    HttpInput,
    Refusal,
    TooLarge,
    gunzip,
)
from collector.inputs.proto.push_pb2 import PushRequest
from parsers.levels import level_from_fields
from wharf.record import Record

__all__ = ["DuplicateLabel", "LokiInput", "decode_loki", "label_text", "parse_labels"]

JSON: Final = "application/json"
_TS_MIN: Final = -(1 << 63)
_TS_MAX: Final = (1 << 63) - 1
_NS: Final = 1_000_000_000
# A label pair of a Prometheus label set: name = "value" (Go escapes inside the quotes),
# followed by a comma or by the closing brace.
_LABEL_PAIR: Final = re.compile(
    r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|(?=\}\s*\Z))', re.DOTALL
)
_LABELS_END: Final = re.compile(r"\s*\}\s*\Z")
_LABEL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT64_TEXT: Final = re.compile(r"[+-]?[0-9]{1,19}\Z")
# Loki's validation messages (grafana/loki pkg/validation/validate.go).
MISSING_LABELS: Final = "error at least one label pair is required per stream"


class DuplicateLabel(ValueError):
    """A label set that names one label twice (Loki refuses the stream, not the request)."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(f"{text[:80]!r}: duplicate label name {name!r}")
        self.name = name


class _JsonStream(msgspec.Struct):
    stream: dict[str, str] = msgspec.field(default_factory=dict)
    values: list[list[str | dict[str, str]]] = msgspec.field(default_factory=list)


class _JsonPush(msgspec.Struct):
    streams: list[_JsonStream] = msgspec.field(default_factory=list)


_json_decoder: Final = msgspec.json.Decoder(_JsonPush)


def parse_labels(text: str) -> dict[str, str]:
    """A Prometheus label set ``{name="value", ...}`` as a dict (empty values left out);
    ``ValueError`` saying what is wrong."""
    s = text.strip()
    if len(s) < 2 or s[0] != "{" or s[-1] != "}":
        raise ValueError(f'{text[:80]!r} is not a label set {{name="value", ...}}')
    labels: dict[str, str] = {}
    pos = 1
    while not _LABELS_END.match(s, pos):  # (no slice per pair: a label set may be long)
        m = _LABEL_PAIR.match(s, pos)
        if m is None:
            raise ValueError(f'{text[:80]!r}: no name="value" pair at character {pos}')
        name, raw = m.group(1), m.group(2)
        if name in labels:
            raise DuplicateLabel(text, name)
        if "\\" in raw:
            try:
                raw = json.loads(f'"{raw}"', strict=False)
            except json.JSONDecodeError:
                raise ValueError(f"{text[:80]!r}: a bad escape in the value of {name!r}") from None
        if raw:
            labels[name] = raw
        pos = m.end()
    return labels


def label_text(labels: dict[str, str]) -> str:
    """A label set as Loki prints it: sorted, ``{a="1", b="2"}``."""
    pairs = (f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(labels.items()))
    return "{" + ", ".join(pairs) + "}"


class _Streams:
    """Records gathered stream by stream, and the streams Loki's validation would refuse."""

    def __init__(self, body: Body) -> None:
        self.peer = body.peer
        self.out = body.decoded()

    def stream(self, labels: dict[str, str]) -> tuple[str, str, str] | None:
        """The host, source and printed label set of a stream; ``None`` (rejected) when it
        has no labels."""
        if not labels:
            return None
        printed = label_text(labels)
        host = labels.get("host") or labels.get("hostname") or self.peer
        source = labels.get("job") or labels.get("filename") or printed
        return host, source, printed

    def entry(
        self,
        where: tuple[str, str, str],
        labels: dict[str, str],
        ts: int,
        line: str,
        metadata: dict[str, str],
    ) -> None:
        host, source, printed = where
        if ts > _TS_MAX:
            self.out.reject(1, f"entry for stream '{printed}' has timestamp too new: {ts}")
            return
        if ts < _TS_MIN:
            self.out.reject(1, f"entry for stream '{printed}' has timestamp too old: {ts}")
            return
        fields = {**labels, **metadata} if metadata else dict(labels)
        self.out.add(
            Record(
                ts=ts,
                line=line,
                host=host,
                source=source,
                fields=fields,
                level=level_from_fields(fields),
            )
        )


def _json_streams(data: bytes, body: Body) -> Decoded:
    try:
        push = _json_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not a Loki push request: {exc}") from None
    streams = _Streams(body)
    for i, s in enumerate(push.streams):
        for name in s.stream:
            if not _LABEL_NAME.match(name):
                raise BadRequest(f"couldn't parse labels: invalid label name {name!r}")
        labels = {k: v for k, v in s.stream.items() if v}
        where = streams.stream(labels)
        if where is None:
            streams.out.reject(len(s.values), MISSING_LABELS)
            continue
        for j, value in enumerate(s.values):
            at = f"streams[{i}].values[{j}]"
            if not 2 <= len(value) <= 3:
                raise BadRequest(
                    f"{at}: error reading entry: array must have at least 2 and up to 3 values"
                )
            ts_text, line = value[0], value[1]
            if not isinstance(ts_text, str) or not _INT64_TEXT.match(ts_text):
                why = f"{ts_text!r} is not a string of nanoseconds"
                raise BadRequest(f"{at}: error reading entry timestamp: {why}")
            if not isinstance(line, str):
                raise BadRequest(f"{at}: error reading entry: the line is not a string")
            metadata: dict[str, str] = {}
            if len(value) == 3:
                meta = value[2]
                if not isinstance(meta, dict):
                    raise BadRequest(
                        f"{at}: error reading entry: structured metadata is not an object"
                    )
                metadata = meta
            ts = int(ts_text)
            if not _TS_MIN <= ts <= _TS_MAX:
                raise BadRequest(f"{at}: error reading entry timestamp: {ts_text} is out of range")
            streams.entry(where, labels, ts, line, metadata)
    return streams.out


def _protobuf_streams(data: bytes, body: Body) -> Decoded:
    try:
        size = cramjam.snappy.decompress_raw_len(data)
    except cramjam.DecompressionError as exc:
        raise BadRequest(f"the body is not snappy-compressed (block format): {exc}") from None
    if size > body.limit:
        raise TooLarge(
            "request body too large: decompressed message size too large than max "
            f"({size} vs {body.limit})"
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise BadRequest(f"the body is not snappy-compressed (block format): {exc}") from None
    request = PushRequest()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise BadRequest(f"the body is not a Loki PushRequest: {exc}") from None
    streams = _Streams(body)
    for s in request.streams:
        try:
            labels = parse_labels(s.labels)
        except DuplicateLabel as exc:
            streams.out.reject(
                len(s.entries), f"stream '{s.labels}' has duplicate label name: '{exc.name}'"
            )
            continue
        except ValueError as exc:
            raise BadRequest(f"couldn't parse labels: {exc}") from None
        where = streams.stream(labels)
        if where is None:
            streams.out.reject(len(s.entries), MISSING_LABELS)
            continue
        for e in s.entries:
            ts = e.timestamp.seconds * _NS + e.timestamp.nanos
            metadata = {m.name: m.value for m in e.structuredMetadata}
            streams.entry(where, labels, ts, e.line, metadata)
    return streams.out


def decode_loki(body: Body) -> Decoded:
    """The records of one Loki push request (pure), or a ``Refusal``."""
    data = body.data
    if body.content_encoding == "gzip":
        data = gunzip(data, body.limit)
    elif len(data) > body.limit:
        sizes = f"({len(data)} vs {body.limit})"
        raise TooLarge(f"request body too large: message size too large than max {sizes}")
    if body.content_type == JSON:
        return _json_streams(data, body)
    return _protobuf_streams(data, body)


class LokiInput(HttpInput):
    """Loki push on ``POST /loki/api/v1/push`` (see the module docstring)."""

    path = "/loki/api/v1/push"

    def check_headers(self, content_type: str, content_encoding: str) -> None:
        if content_encoding not in ("", "snappy", "gzip"):
            raise BadRequest(f'Content-Encoding "{content_encoding}" not supported')

    def decode(self, body: Body) -> Decoded:
        return decode_loki(body)

    def accepted(self, decoded: Decoded, content_type: str) -> web.Response:
        if decoded.rejected:  # Loki stores the valid streams and answers 400 for the rest
            return _text(400, f"{decoded.reason} ({decoded.rejected} entries not stored)")
        return web.Response(status=204)

    def refused(self, refusal: Refusal, content_type: str) -> web.Response:
        return _text(refusal.status, str(refusal))


def _text(status: int, message: str) -> web.Response:
    """An answer as Go's ``http.Error`` writes Loki's: the message and a newline."""
    return web.Response(
        status=status,
        text=message + "\n",
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
    )
