"""Join container log fragments (CRI ``P``/``F`` lines, Docker lines without a newline) into
whole log lines.

Container runtimes cut long lines: containerd and CRI-O write at most 16 KiB of content per file
line (``max_container_log_line_size``) and tag every piece but the last ``P``; Docker's
json-file driver cuts at 16 KiB and leaves the newline off every piece but the last. This is a
pure, stateful stage after ``CriParser``/``DockerParser``: feed it each parsed line (with where
it sits in the file) and it returns the whole lines it completes, as ``Merged`` events.

- State is kept per stream (``stdout``/``stderr``): the runtime interleaves the two, and a
  fragment only continues the last one of its own stream. Use one merger per file (and per
  format: a docker line never continues a CRI one).
- An event ends at an ``F`` part, or is flushed incomplete (``complete=False``) by
  ``flush_due`` (no fragment for ``flush_timeout_ns``: the container died mid-line), by
  ``flush`` (end of the file; or a line that is not a container line, which breaks every
  pending line, as in Fluent Bit), or when it would grow past ``max_bytes``; the rest of the
  line then starts a new event. Nothing is dropped, and memory stays bounded.
- The first fragment's time and fields are the event's (Beats and Vector do the same).
- Fragments read with ``LineSplitter(errors="surrogateescape")`` are joined as bytes, so a
  UTF-8 character cut in two at the 16 KiB boundary comes out whole; what is still invalid is
  then replaced with U+FFFD (``invalid_utf8_events`` counts those events).

For exactly-once delivery, ``pending_offset`` is the file offset of the oldest fragment not yet
emitted: the shipper must not checkpoint past it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import msgspec

from parsers._base import Parsed

__all__ = [
    "DEFAULT_MAX_PARTIAL_BYTES",
    "DEFAULT_PARTIAL_FLUSH_TIMEOUT_NS",
    "Merged",
    "PartialMerger",
]

# 1 MiB of content per joined line, i.e. 64 fragments of 16 KiB (the cut size of both Docker
# and containerd). It matches the line splitter's DEFAULT_MAX_LINE_BYTES: a container line is
# allowed to be as long as a file line. Longer lines are emitted in 1 MiB pieces.
DEFAULT_MAX_PARTIAL_BYTES: Final = 1 << 20

# A runtime writes the fragments of one line back to back; 5 s without the next one means the
# container stopped mid-line (Fluent Bit's multiline flush is 4 s, Filebeat's 5 s).
DEFAULT_PARTIAL_FLUSH_TIMEOUT_NS: Final = 5_000_000_000


class Merged(msgspec.Struct, kw_only=True, gc=False):
    """A whole container log line.

    ``parsed`` carries the first fragment's time and fields, with ``message`` the joined text
    and ``tag`` ``F`` (``P`` if incomplete). ``offset`` is where its first fragment starts in
    the file and ``end`` where its last fragment ends (next byte); ``parts`` counts fragments.
    """

    parsed: Parsed
    offset: int
    end: int
    parts: int
    complete: bool


class _Pending:
    __slots__ = ("chunks", "end", "fields", "last_ns", "nbytes", "offset", "ts")

    def __init__(self, parsed: Parsed, offset: int, end: int, now_ns: int) -> None:
        self.fields = parsed.fields
        self.ts = parsed.ts
        self.offset = offset
        self.end = end
        self.last_ns = now_ns
        self.chunks: list[str] = [parsed.fields["message"]]
        self.nbytes = _size(self.chunks[0])


def _size(text: str) -> int:
    """UTF-8 length, near enough for a limit (a surrogate counts 3 bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _clean(text: str) -> tuple[str, bool]:
    """``text`` as valid Unicode: surrogate-escaped bytes are decoded together, then whatever
    is not UTF-8 is replaced. Returns the text and whether anything was replaced."""
    if text.isascii():
        return text, False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return text, False
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A surrogate that is not an escaped byte: nothing to rejoin, replace it.
        raw = text.encode("utf-8", "surrogatepass")
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


class PartialMerger:
    """Joins ``P``/``F`` fragments per stream (see the module docstring)."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_PARTIAL_BYTES,
        flush_timeout_ns: int = DEFAULT_PARTIAL_FLUSH_TIMEOUT_NS,
        partial: bool = True,
        streams: Collection[str] | None = None,
    ) -> None:
        """``partial=False`` emits every fragment as it is (Filebeat's ``partial: false``);
        ``streams`` keeps only those streams (Filebeat's ``stream``), counting the rest in
        ``dropped_lines``."""
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if flush_timeout_ns < 0:
            raise ValueError(f"flush_timeout_ns must be >= 0, got {flush_timeout_ns}")
        self._max = max_bytes
        self._timeout = flush_timeout_ns
        self._partial = partial
        self._streams = frozenset(streams) if streams is not None else None
        self._pending: dict[str, _Pending] = {}
        self.dropped_lines = 0
        self.split_events = 0
        self.invalid_utf8_events = 0

    @property
    def pending_parts(self) -> int:
        """Fragments held, over all streams."""
        return sum(len(p.chunks) for p in self._pending.values())

    @property
    def pending_bytes(self) -> int:
        """Content bytes held, over all streams (UTF-8, near enough)."""
        return sum(p.nbytes for p in self._pending.values())

    @property
    def pending_offset(self) -> int | None:
        """File offset of the oldest fragment not yet emitted (None: nothing held)."""
        if not self._pending:
            return None
        return min(p.offset for p in self._pending.values())

    @property
    def pending_offsets(self) -> frozenset[int]:
        """File offsets of the first fragments of the lines held."""
        return frozenset(p.offset for p in self._pending.values())

    def next_due_ns(self) -> int | None:
        """When ``flush_due`` will have a line to emit (``None``: nothing held)."""
        if not self._pending:
            return None
        return min(p.last_ns for p in self._pending.values()) + self._timeout

    def feed(
        self, parsed: Parsed, offset: int = -1, size: int = 0, now_ns: int = 0
    ) -> list[Merged]:
        """Take one parsed CRI or docker line (``offset``/``size``: where it sits in the file,
        as ``LineSplitter`` reports it; ``now_ns``: a clock for ``flush_due``)."""
        fields = parsed.fields
        if parsed.error is not None or "message" not in fields or "stream" not in fields:
            raise ValueError("PartialMerger takes parsed CRI or docker lines only")
        stream = fields["stream"]
        if self._streams is not None and stream not in self._streams:
            self.dropped_lines += 1
            return []
        end = offset + size
        final = fields.get("tag", "F") != "P"
        if not self._partial:
            return [self._emit_one(parsed, offset, end, complete=final)]
        out: list[Merged] = []
        pending = self._pending.get(stream)
        if pending is None:
            if final:
                return [self._emit_one(parsed, offset, end, complete=True)]
            self._pending[stream] = _Pending(parsed, offset, end, now_ns)
            return out
        message = fields["message"]
        nbytes = _size(message)
        if pending.nbytes + nbytes > self._max:
            # Emit what is held; this fragment starts the next piece of the long line.
            self.split_events += 1
            out.append(self._emit(self._pending.pop(stream), complete=False))
            if final:
                out.append(self._emit_one(parsed, offset, end, complete=True))
            else:
                self._pending[stream] = _Pending(parsed, offset, end, now_ns)
            return out
        pending.chunks.append(message)
        pending.nbytes += nbytes
        pending.end = end
        pending.last_ns = now_ns
        if final:
            out.append(self._emit(self._pending.pop(stream), complete=True))
        return out

    def flush_due(self, now_ns: int) -> list[Merged]:
        """Emit (incomplete) the lines whose last fragment is ``flush_timeout_ns`` old."""
        due = [s for s, p in self._pending.items() if now_ns - p.last_ns >= self._timeout]
        return [self._emit(self._pending.pop(s), complete=False) for s in due]

    def flush(self) -> list[Merged]:
        """Emit every held line (incomplete), oldest first."""
        pending = sorted(self._pending.values(), key=lambda p: p.offset)
        self._pending.clear()
        return [self._emit(p, complete=False) for p in pending]

    def _emit(self, pending: _Pending, complete: bool) -> Merged:
        text, replaced = _clean("".join(pending.chunks))
        if replaced:
            self.invalid_utf8_events += 1
        fields: dict[str, Any] = dict(pending.fields)
        fields["message"] = text
        fields["tag"] = "F" if complete else "P"
        return Merged(
            parsed=Parsed(fields=fields, ts=pending.ts),
            offset=pending.offset,
            end=pending.end,
            parts=len(pending.chunks),
            complete=complete,
        )

    def _emit_one(self, parsed: Parsed, offset: int, end: int, complete: bool) -> Merged:
        message = parsed.fields["message"]
        text, replaced = _clean(message)
        if replaced:
            self.invalid_utf8_events += 1
        if text is not message:
            fields = dict(parsed.fields)
            fields["message"] = text
            parsed = Parsed(fields=fields, ts=parsed.ts, level=parsed.level)
        return Merged(parsed=parsed, offset=offset, end=end, parts=1, complete=complete)
