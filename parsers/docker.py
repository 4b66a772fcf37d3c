"""Docker ``json-file`` log lines (``/var/lib/docker/containers/*/*-json.log``).

    {"log":"hello\\n","stream":"stdout","time":"2017-11-09T13:27:36.277747246Z"}

``time`` (RFC 3339, nanoseconds) becomes ``Parsed.ts``; fields are ``stream``, ``message`` (the
``log`` value without its trailing newline), ``tag`` and, when the line has them, ``attrs``
(``--log-opt labels/env`` values). ``log``, ``stream`` and ``time`` are required strings.

``tag`` is ``F`` when ``log`` ends with a newline and ``P`` otherwise: Docker cuts lines longer
than 16 KiB into fragments and writes the newline only on the last one (moby's json-file driver
appends ``\\n`` to every message that is not a partial), so a ``log`` without one is a fragment;
``parsers.partial.PartialMerger`` joins the fragments of a line. Beats reads it the same way.

A raw control character inside a string (which Docker never writes, but hand-made or
re-encoded files contain) is accepted, as Fluent Bit does.
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

from parsers._base import Parsed
from parsers.timestamps import parse_rfc3339

__all__ = ["DockerParser"]


class _Line(msgspec.Struct, gc=False):
    log: str
    stream: str
    time: str
    attrs: dict[str, Any] | None = None


_DECODER: Final = msgspec.json.Decoder(_Line)


def _decode(line: str) -> _Line | str:
    try:
        return _DECODER.decode(line)
    except (msgspec.DecodeError, UnicodeEncodeError) as exc:
        error = str(exc)
    try:
        # Slow path for strings holding raw control characters (strict JSON forbids them), and
        # for text read with errors="surrogateescape" (msgspec takes only valid UTF-8).
        obj = json.loads(line, strict=False)
    except (ValueError, RecursionError):
        return error
    if _encodable(line):
        # json.loads turns an escaped lone surrogate ("\ud800") into one, which no UTF-8
        # encoder takes downstream: replace it. (Surrogates already in ``line`` are bytes kept
        # by surrogateescape, left for PartialMerger to decode.)
        obj = _replace_surrogates(obj)
    try:
        return msgspec.convert(obj, _Line)
    except msgspec.ValidationError:
        return error


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        if _encodable(value):
            return value
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


class DockerParser:
    """Docker json-file lines (see the module docstring)."""

    name = "docker"

    def parse(self, line: str) -> Parsed:
        if not line.startswith("{"):
            stripped = line.lstrip()
            if not stripped.startswith("{"):
                return Parsed(error="not a docker json-file line: not a JSON object")
        entry = _decode(line)
        if isinstance(entry, str):
            return Parsed(error=f"not a docker json-file line: {entry}")
        ns = parse_rfc3339(entry.time)
        if ns is None:
            return Parsed(error=f"not a docker json-file line: bad time {entry.time[:40]!r}")
        log = entry.log
        if log.endswith("\n"):
            fields: dict[str, Any] = {"stream": entry.stream, "tag": "F", "message": log[:-1]}
        else:
            fields = {"stream": entry.stream, "tag": "P", "message": log}
        if entry.attrs is not None:
            fields["attrs"] = entry.attrs
        return Parsed(fields=fields, ts=ns)
