"""What every parser returns, and the protocol it implements."""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec

# The largest integer a field may hold: a batch stores fields as msgpack, whose integers are
# 64-bit; a larger one could not be encoded and would fail the whole batch.
MAX_INT: Final = (1 << 63) - 1


class Parsed(msgspec.Struct, kw_only=True, gc=False):
    """The outcome of parsing one line (or one multiline event).

    ``fields`` is empty when parsing failed; ``error`` then says what, where and why. ``ts`` is
    nanoseconds since the epoch when the line carried a timestamp, else ``None`` (the caller
    uses the read time). ``level`` is one of ``parsers.LEVELS`` or ``None``.
    """

    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    ts: int | None = None
    level: str | None = None
    error: str | None = None


class Parser(Protocol):
    """A pure, per-line parser. Implementations must never raise on any input ``str``."""

    name: str

    def parse(self, line: str) -> Parsed:
        """Parse one line (without its line ending)."""
        ...


def count_of(digits: str) -> int | None:
    """The value of ``digits`` (ASCII digits, as a pattern matched them), or ``None`` when it
    is above ``MAX_INT`` (and without converting thousands of digits to find out)."""
    if len(digits) > 19:
        return None
    value = int(digits)
    return value if value <= MAX_INT else None
