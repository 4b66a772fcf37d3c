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
from dataclasses import dataclass
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


class Pending:
    """A batch being filled for one topic: its parts (runs of whole lines as read, and lists
    of records), in order."""

    __slots__ = ("count", "parts", "spans", "started", "text_bytes", "topic")

    def __init__(self, topic: str, started: float) -> None:
        self.topic = topic
        self.started = started
        self.parts: list[wb.Part] = []
        self.count = 0  # records
        self.text_bytes = 0
        self.spans: dict[str, tuple[FileTrack, int]] = {}  # file id -> (track, end)

    def add_records(self, records: list[Record]) -> None:
        """Append records (to the last part when it is a list of records)."""
        last = self.parts[-1] if self.parts else None
        if isinstance(last, list):
            last += records
        else:
            self.parts.append(list(records))
        self.count += len(records)


@dataclass
class Cut:
    """A batch ready to build: its parts and spans."""

    topic: str
    parts: list[wb.Part]
    spans: list[wb.Span]
    tracks: list[tuple[FileTrack, int]]
    text_bytes: int
    count: int = 0  # records

    @property
    def records(self) -> list[Record]:
        """Every record, materialized (runs turned into records: for tests and tools; the
        shipper builds from the parts)."""
        out: list[Record] = []
        for part in self.parts:
            out += part.records() if isinstance(part, wb.Run) else part
        return out

    def build(self, *, producer_id: bytes, producer_seq: int, version: int = wb.VERSION) -> bytes:
        """The batch's bytes (``wharf.batch.build_parts``): compression, so off the reading
        thread."""
        return wb.build_parts(
            self.parts,
            producer_id=producer_id,
            producer_seq=producer_seq,
            spans=self.spans,
            version=version,
        )


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

    def _open(self, topic: str, file_id: str, now: float, cuts: list[Cut]) -> Pending:
        """The pending batch of ``topic`` that may take records of ``file_id`` (a new one
        after cutting a batch that already spans ``MAX_BATCH_FILES`` other files)."""
        p = self.pending.get(topic)
        if p is None:
            p = self.pending[topic] = Pending(topic, now)
        elif file_id not in p.spans and len(p.spans) >= MAX_BATCH_FILES:
            cut = self.cut(topic)
            if cut is not None:
                cuts.append(cut)
            p = self.pending[topic] = Pending(topic, now)
        return p

    def add(
        self, topic: str, track: FileTrack, record: Record, end: int, size: int, now: float
    ) -> Cut | None:
        """Add one record of ``track``'s file ending at file offset ``end``; return a cut
        batch when this one filled it."""
        cuts: list[Cut] = []
        p = self._open(topic, track.file_id, now, cuts)
        p.add_records([record])
        p.text_bytes += size
        p.spans[track.file_id] = (track, end)
        if cuts:
            return cuts[0]
        if p.text_bytes >= self.batch_bytes or p.count >= MAX_BATCH_RECORDS:
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
            p = self._open(topic, fid, now, cuts)
            # The first record j (from i) whose addition fills the batch, if any.
            before = cum[i - 1] if i else 0
            j = bisect_left(cum, self.batch_bytes - p.text_bytes + before, i)
            j = min(j, i + MAX_BATCH_RECORDS - p.count - 1)
            if j >= n:
                p.add_records(records[i:])
                p.text_bytes += cum[-1] - before
                p.spans[fid] = (track, ends[-1])
                break
            j = max(j, i)
            while j + 1 < n and ends[j + 1] == ends[j]:
                j += 1  # never inside a group of overlapping events (see shipper.container)
            p.add_records(records[i : j + 1])
            p.text_bytes += cum[j] - before
            p.spans[fid] = (track, ends[j])
            cut = self.cut(topic)
            if cut is not None:
                cuts.append(cut)
            i = j + 1
        return cuts

    def add_run(self, topic: str, track: FileTrack, run: wb.Run, now: float) -> list[Cut]:
        """``add_many`` for a run of whole lines (each record's size is its line and its
        newline): cut at exactly the records ``add_many`` would cut at, by splitting the run
        at a line boundary (C-level searches, no per-line work)."""
        cuts: list[Cut] = []
        fid = track.file_id
        rest: wb.Run | None = run
        while rest is not None:
            p = self._open(topic, fid, now, cuts)
            need = self.batch_bytes - p.text_bytes
            # The records it takes to fill the batch (one more than the run: it does not).
            k = rest.count + 1 if len(rest.blob) + 1 < need else rest.lines_for(need)
            k = min(k, MAX_BATCH_RECORDS - p.count)
            full = k <= rest.count
            if k < rest.count:
                piece, rest = rest.split(k)
            else:
                piece, rest = rest, None
            p.parts.append(piece)
            p.count += piece.count
            p.text_bytes += len(piece.blob) + 1
            p.spans[fid] = (track, piece.end)
            if full:
                cut = self.cut(topic)
                if cut is not None:
                    cuts.append(cut)
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
        if p is None or not p.count:
            return None
        spans: list[wb.Span] = []
        for fid, (track, end) in p.spans.items():
            spans.append(wb.Span(fid, track.span_start, end))
            # The next span starts here even if this cut has not left yet (held while a
            # checkpoint cannot be written): spans stay contiguous, never overlapping.
            track.span_start = max(track.span_start, end)
        return Cut(topic, p.parts, spans, list(p.spans.values()), p.text_bytes, p.count)

    def cut_all(self) -> list[Cut]:
        """Take every pending batch."""
        return [c for c in (self.cut(t) for t in list(self.pending)) if c is not None]

    def holds(self, file_id: str) -> bool:
        """Whether a pending batch holds records of ``file_id``."""
        return any(file_id in p.spans for p in self.pending.values())
