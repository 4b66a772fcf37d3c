"""Kubernetes CRI container log lines (containerd, CRI-O), as the kubelet writes them.

    2016-10-06T00:17:09.669794202Z stdout F The content of the log entry
    2016-10-06T00:17:09.669794202Z stdout P First part of a long line, cut at 16 KiB ...

``time stream tag content``: ``time`` (RFC 3339, nanoseconds) becomes ``Parsed.ts``; fields are
``stream`` (``stdout``/``stderr``), ``tag`` (``P`` partial or ``F`` full; kubelet's
``P:TAG1:TAG2`` form keeps its first letter) and ``message`` (the content, a trailing newline
removed). The tag-less form of older runtimes (``time stream content``) is read as ``F``; so a
content starting with ``P `` or ``F `` is read as a tag, as Beats and the kubelet do.

A ``P`` line is a fragment: ``parsers.partial.PartialMerger`` joins the fragments of a line.
Lines that are not CRI (no valid time, no stream, no content field) are errors.
"""

from __future__ import annotations

from typing import Final

from parsers._base import Parsed
from parsers.timestamps import parse_rfc3339

__all__ = ["CriParser"]

_STREAMS: Final = frozenset({"stdout", "stderr"})


class CriParser:
    """CRI log lines (see the module docstring)."""

    name = "cri"

    def parse(self, line: str) -> Parsed:
        parts = line.split(" ", 3)
        if len(parts) < 3:
            return Parsed(error="not a CRI log line: expected 'time stream [tag] message'")
        time, stream = parts[0], parts[1]
        if stream not in _STREAMS:
            return Parsed(error=f"not a CRI log line: stream {stream[:20]!r} is not stdout/stderr")
        ns = parse_rfc3339(time)
        if ns is None:
            return Parsed(error=f"not a CRI log line: bad time {time[:40]!r}")
        flags = parts[2]
        tag = flags[:1]
        if tag in {"P", "F"} and (len(flags) == 1 or flags[1] == ":"):
            message = parts[3] if len(parts) == 4 else ""
        else:
            # No tag: everything after the stream is the content.
            tag = "F"
            message = line[len(time) + len(stream) + 2 :]
        if message.endswith("\n"):
            message = message[:-1]
        return Parsed(fields={"stream": stream, "tag": tag, "message": message}, ts=ns)
