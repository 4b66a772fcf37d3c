"""Records into batches per topic, with the span of every file a batch carries, and the ledger
that turns acknowledgements back into per-file checkpoint offsets. Pure: no I/O, no asyncio.

A file's spans are contiguous: each batch's span for a file starts where the previous one
ended, and ends at the end of the last event of that file in the batch (a partial line or a
held multiline event is never inside a span). The collector keeps the high-water mark per
``(shipper_id, file_id)`` and drops records below it, so any span can be re-sent safely.

A file's acknowledged offset advances only over a contiguous prefix of acknowledged spans,
whatever order acknowledgements arrive in.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final

from parsers import Record
from wharf import batch as wb

# A batch of many tiny lines must stay well within the batch format's record limit.
MAX_BATCH_RECORDS: Final = 100_000
# A batch carries one span per file; thousands of files still fit the meta limit.
MAX_BATCH_FILES: Final = 2_000


class FileTrack:
    """Delivery ledger of one ``file_id``."""

    __slots__ = ("acked", "check", "file_id", "inflight", "persisted", "span_start")

    def __init__(self, file_id: str, offset: int, check: int = 0) -> None:
        self.file_id = file_id
        # Whether a saved checkpoint knows this id. A span may only leave once it does: after a
        # crash the file must be re-read under the same id, or the collector cannot tell the
        # re-sent lines from new ones.
        self.persisted = False
        self.acked = offset  # first byte not acknowledged
        self.check = check  # CRC of the bytes before ``acked`` (see ``shipper.identity``)
        self.span_start = offset  # where the next span starts
        self.inflight: deque[list[int]] = deque()  # [seq, end, done, check]

    @property
    def busy(self) -> bool:
        """Whether spans are in flight."""
        return bool(self.inflight)

    def sent(self, seq: int, end: int, check: int = -1) -> None:
        """A span ending at ``end`` (``check``: CRC of the bytes before it) left in batch
        ``seq``."""
        self.inflight.append([seq, end, 0, check])
        self.span_start = max(self.span_start, end)

    def ack(self, seq: int) -> bool:
        """Batch ``seq`` is acknowledged; return whether ``acked`` moved."""
        for entry in self.inflight:
            if entry[0] == seq:
                entry[2] = 1
                break
        moved = False
        while self.inflight and self.inflight[0][2]:
            _, end, _, check = self.inflight.popleft()
            if end > self.acked:
                self.acked = end
                self.check = check
                moved = True
        return moved


@dataclass
class Pending:
    """A batch being filled for one topic."""

    topic: str
    started: float
    records: list[Record] = field(default_factory=list)
    text_bytes: int = 0
    spans: dict[str, tuple[FileTrack, int]] = field(default_factory=dict)  # id -> (track, end)


@dataclass
class Cut:
    """A batch ready to build: its records and spans."""

    topic: str
    records: list[Record]
    spans: list[wb.Span]
    tracks: list[tuple[FileTrack, int]]
    text_bytes: int


class Batcher:
    """Accumulates records per topic; cuts by size, record count, file count or linger."""

    def __init__(self, batch_bytes: int, linger_s: float) -> None:
        self.batch_bytes = batch_bytes
        self.linger_s = linger_s
        self.pending: dict[str, Pending] = {}

    @property
    def text_bytes(self) -> int:
        """Text held in all pending batches."""
        return sum(p.text_bytes for p in self.pending.values())

    def add(
        self, topic: str, track: FileTrack, record: Record, end: int, size: int, now: float
    ) -> Cut | None:
        """Add one record of ``track``'s file ending at file offset ``end``; return a cut
        batch when this one filled it."""
        p = self.pending.get(topic)
        if p is None:
            p = self.pending[topic] = Pending(topic, now)
        elif track.file_id not in p.spans and len(p.spans) >= MAX_BATCH_FILES:
            cut = self.cut(topic)
            p = self.pending[topic] = Pending(topic, now)
            p.records.append(record)
            p.text_bytes += size
            p.spans[track.file_id] = (track, end)
            return cut
        p.records.append(record)
        p.text_bytes += size
        p.spans[track.file_id] = (track, end)
        if p.text_bytes >= self.batch_bytes or len(p.records) >= MAX_BATCH_RECORDS:
            return self.cut(topic)
        return None

    def add_many(
        self,
        topic: str,
        track: FileTrack,
        records: list[Record],
        ends: list[int],
        sizes: list[int],
        now: float,
    ) -> list[Cut]:
        """``add`` for consecutive records of one file (``ends`` and ``sizes`` per record);
        return the batches cut on the way, at exactly the records ``add`` would cut at."""
        cuts: list[Cut] = []
        i, n = 0, len(records)
        fid = track.file_id
        cum = list(accumulate(sizes))
        while i < n:
            p = self.pending.get(topic)
            if p is None:
                p = self.pending[topic] = Pending(topic, now)
            elif fid not in p.spans and len(p.spans) >= MAX_BATCH_FILES:
                cut = self.cut(topic)
                if cut is not None:
                    cuts.append(cut)
                p = self.pending[topic] = Pending(topic, now)
            # The first record j (from i) whose addition fills the batch, if any.
            before = cum[i - 1] if i else 0
            j = bisect_left(cum, self.batch_bytes - p.text_bytes + before, i)
            j = min(j, i + MAX_BATCH_RECORDS - len(p.records) - 1)
            if j >= n:
                p.records += records[i:]
                p.text_bytes += cum[-1] - before
                p.spans[fid] = (track, ends[-1])
                break
            j = max(j, i)
            while j + 1 < n and ends[j + 1] == ends[j]:
                j += 1  # never inside a group of overlapping events (see shipper.container)
            p.records += records[i : j + 1]
            p.text_bytes += cum[j] - before
            p.spans[fid] = (track, ends[j])
            cut = self.cut(topic)
            if cut is not None:
                cuts.append(cut)
            i = j + 1
        return cuts

    def due(self, now: float, linger_s: float | None = None) -> list[Cut]:
        """Cut every batch whose first record waited ``linger_s`` (by default the configured
        one)."""
        linger = self.linger_s if linger_s is None else linger_s
        due = [t for t, p in self.pending.items() if now - p.started >= linger]
        return [c for c in map(self.cut, due) if c is not None]

    def next_due(self, linger_s: float | None = None) -> float | None:
        """When the oldest pending batch is due (monotonic seconds)."""
        if not self.pending:
            return None
        linger = self.linger_s if linger_s is None else linger_s
        return min(p.started for p in self.pending.values()) + linger

    def cut(self, topic: str) -> Cut | None:
        """Take the pending batch of ``topic`` (``None``: nothing pending)."""
        p = self.pending.pop(topic, None)
        if p is None or not p.records:
            return None
        spans: list[wb.Span] = []
        for fid, (track, end) in p.spans.items():
            spans.append(wb.Span(fid, track.span_start, end))
            # The next span starts here even if this cut has not left yet (held while a
            # checkpoint cannot be written): spans stay contiguous, never overlapping.
            track.span_start = max(track.span_start, end)
        return Cut(topic, p.records, spans, list(p.spans.values()), p.text_bytes)

    def cut_all(self) -> list[Cut]:
        """Take every pending batch."""
        return [c for c in (self.cut(t) for t in list(self.pending)) if c is not None]

    def holds(self, file_id: str) -> bool:
        """Whether a pending batch holds records of ``file_id``."""
        return any(file_id in p.spans for p in self.pending.values())
