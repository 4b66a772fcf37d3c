"""Syslog messages → records: the mapping of the syslog input, pure (bytes in, a record or
``None`` out).

Each message (one frame, or one message of a datagram) is decoded as UTF-8 (invalid bytes
replaced), rsyslog's escapes of tabs and newlines (``#011``, ``#012``: its
``$EscapeControlCharactersOnReceive``, on by default, turns a multi-line message into one line
this way) are turned back into the characters, and the text is parsed by
``parsers.syslog.SyslogParser(lenient=True)`` (RFC 5424, with a lenient reading when a sender
breaks the strict grammar; RFC 3164 with or without year, zone or colon after the tag; a bare
``<PRI>`` and text). The record:

- ``line``: the message as received (without its framing), after the unescaping;
- ``ts``: the message's timestamp (an RFC 3164 timestamp has no zone: read as UTC, like the
  shipper's syslog parser, its year inferred), else the time it arrived;
- ``host``: the message's HOSTNAME, else the sender's IP address;
- ``source``: the APP-NAME (RFC 5424) or TAG (RFC 3164), else the input's name;
- ``level``: from the severity (``parsers.levels``);
- ``fields``: ``priority``, ``facility``, ``severity`` (numbers), ``version``, ``hostname``,
  ``appname``, ``procid``, ``msgid``, ``message`` (each when the message has it), and each
  structured-data parameter as ``SD-ID.PARAM-NAME`` (``origin.ip``, ``meta@32473.sequenceId``);
  an element without parameters as ``SD-ID`` with an empty value.

A message that is not syslog (no valid ``<PRI>`` and no RFC 3164 header) gives ``None``: the
caller counts it as malformed and skips it. Other escapes (``#033`` and the rest) stay as
rsyslog wrote them: control characters in stored lines would reach terminals.
"""

from __future__ import annotations

from typing import Any, Final

from parsers.syslog import SyslogParser
from wharf.record import Record

__all__ = ["RecordMaker"]

# What a record's ts may hold (the batch stores int64 nanoseconds): a 5424 timestamp in the
# year 9999 does not fit, and the message's arrival time is used instead.
_TS_MIN: Final = -(1 << 63)
_TS_MAX: Final = (1 << 63) - 1


class RecordMaker:
    """Records of one input (see the module docstring); ``source`` for messages without an
    app-name or tag."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parser = SyslogParser(lenient=True)

    def make(self, message: bytes, peer: str, arrived_ns: int) -> Record | None:
        """The record of one message from ``peer`` (an IP address), or ``None`` when it is
        not syslog."""
        text = message.decode("utf-8", "replace")
        if "#01" in text:
            text = text.replace("#011", "\t").replace("#012", "\n")
        parsed = self.parser.parse(text)
        if parsed.error is not None:
            return None
        fields: dict[str, Any] = parsed.fields
        sd = fields.pop("structured_data", None)
        if sd:
            for sd_id, params in sd.items():
                if not params:
                    fields.setdefault(sd_id, "")
                for name, value in params.items():
                    fields.setdefault(f"{sd_id}.{name}", value)
        ts = parsed.ts
        if ts is None or not _TS_MIN <= ts <= _TS_MAX:
            ts = arrived_ns
        return Record(
            ts=ts,
            line=text,
            host=fields.get("hostname") or peer,
            source=fields.get("appname") or self.source,
            fields=fields,
            level=parsed.level,
        )
