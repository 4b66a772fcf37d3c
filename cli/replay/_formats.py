"""One record as one output line: ``json`` (the API's object, compact), ``raw`` (the line as
it was logged) or ``logfmt`` (``key=value`` pairs, for tools that read logfmt).

Records here are the dicts the collector's consume API sends: ``topic, partition, offset, ts,
host, source, line, fields, level``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from wharf.errors import InvalidArgument

FORMATS: Final = ("json", "raw", "logfmt")
Encoder = Callable[[Mapping[str, Any]], bytes]

_json: Final = msgspec.json.Encoder()
# Our own keys in a logfmt line; a parsed field with one of these names is written as
# ``fields.<name>`` so it cannot shadow the record's own value.
_RESERVED: Final = frozenset(
    {"ts", "topic", "partition", "offset", "host", "source", "level", "line"}
)
_BAD_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9_.:/@-]")
_NEEDS_QUOTES: Final = re.compile(r'[\s="\\]|[\x00-\x1f\x7f]')


def encoder_for(fmt: str) -> Encoder:
    """The function turning a record into its line (with the trailing newline)."""
    if fmt == "json":
        return encode_json
    if fmt == "raw":
        return encode_raw
    if fmt == "logfmt":
        return encode_logfmt
    raise InvalidArgument(f"unknown output format {fmt!r}: use json, raw or logfmt")


def encode_json(rec: Mapping[str, Any]) -> bytes:
    """The record as one compact JSON object."""
    return _json.encode(rec) + b"\n"


def encode_raw(rec: Mapping[str, Any]) -> bytes:
    """The logged line, unchanged (a multiline event stays several lines, as it was logged)."""
    return str(rec.get("line", "")).encode("utf-8", "surrogateescape") + b"\n"


def rfc3339_ns(ts: int) -> str:
    """``2024-05-01T12:00:00.123456789Z`` for nanoseconds since the epoch (UTC)."""
    seconds, nanos = divmod(ts, 1_000_000_000)
    try:
        day = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(ts)
    return f"{day}.{nanos:09d}Z"


def _value(v: Any) -> str:
    if v is None:
        text = ""
    elif isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, int | float):
        return str(v)
    elif isinstance(v, str):
        text = v
    else:
        text = _json.encode(v).decode()
    if text == "" or _NEEDS_QUOTES.search(text):
        escaped = (
            text.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
        return f'"{escaped}"'
    return text


def _key(k: str) -> str:
    key = _BAD_KEY_CHARS.sub("_", k) or "_"
    return f"fields.{key}" if key in _RESERVED else key


def encode_logfmt(rec: Mapping[str, Any]) -> bytes:
    """``ts=... topic=... partition=... offset=... host=... source=... level=... <fields>
    line="..."``: the line last, as it is usually the longest."""
    parts = [f"ts={rfc3339_ns(int(rec.get('ts', 0)))}"]
    for k in ("topic", "partition", "offset", "host", "source"):
        if k in rec:
            parts.append(f"{k}={_value(rec[k])}")
    if rec.get("level"):
        parts.append(f"level={_value(rec['level'])}")
    fields = rec.get("fields") or {}
    if isinstance(fields, Mapping):
        parts.extend(f"{_key(str(k))}={_value(v)}" for k, v in fields.items())
    parts.append(f"line={_value(rec.get('line', ''))}")
    return " ".join(parts).encode("utf-8", "surrogateescape") + b"\n"
