"""The record: one log event, defined once for the whole project.

It lives here because ``parsers`` may import nothing of ours, while every other package may
import ``parsers``; ``wharf.Record`` re-exports it.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

# Normalized severities, least to most severe. ``None`` on a record means "no level known".
LEVELS: Final = ("trace", "debug", "info", "warn", "error", "fatal")


class Record(msgspec.Struct, kw_only=True, gc=False):
    """One log event.

    ``ts`` is nanoseconds since the Unix epoch: parsed from the line when the parser finds a
    timestamp, else the time the line was read. ``line`` is the raw text and is always kept;
    grep works on it. ``file_id`` and ``offset`` say where the line came from (an opaque file
    identity chosen by the shipper and the byte offset of the line's first byte) so that the
    collector can drop what it already stored (exactly-once delivery).
    """

    ts: int
    line: str
    host: str = ""
    source: str = ""
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    level: str | None = None
    file_id: str = ""
    offset: int = -1
