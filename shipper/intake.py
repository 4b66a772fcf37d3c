"""What a file's ``Tail`` hands over becomes batches: runs of whole lines as columns
(``shipper.runs``), other events as records (``shipper.records``), into the ``Batcher``; every
batch it cuts goes to ``Delivery``. And the back-pressure: reading goes on only while there is
``room`` downstream.

One ``Intake`` serves the daemon's reader (every followed file) and ``wharf ship`` (one
stream): both cut the same batches with the same spans and send them the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any, Final, Protocol

from parsers import Parser
from parsers.lines import LineRun
from shipper.batcher import Batcher, FileTrack
from shipper.delivery import Delivery
from shipper.records import to_records
from shipper.runs import RunParts
from shipper.status import Stats
from shipper.tail import Columns, Event

# Cut batches waiting for the builder before reading pauses (bounds memory: one is enough for
# the next build to start the moment one ends).
BUILD_AHEAD: Final = 1
# A batch waits up to ``linger_s`` to fill while earlier ones are being delivered; once every
# file is read and nothing is in flight there is nothing to wait for, and it leaves after this
# (Kafka's producer: linger.ms = 5). Under load batches fill while the window is busy; at a
# trickle a line reaches the collector in milliseconds, not after a full linger.
IDLE_LINGER_S: Final = 0.005

_PLUS_ONE = (1).__add__  # a line's bytes plus its newline


class Origin(Protocol):
    """Where events come from, as far as their records go: an input (``InputRuntime``), or the
    one stream of ``wharf ship``."""

    @property
    def topic(self) -> str: ...
    @property
    def parser(self) -> Parser: ...
    @property
    def fields(self) -> dict[str, Any]: ...
    @property
    def runs(self) -> RunParts: ...


class Intake:
    """Events of files into batches, batches to delivery (see the module docstring)."""

    def __init__(
        self,
        batcher: Batcher,
        delivery: Delivery,
        stats: Stats,
        host: str,
        on_new_batch: Callable[[], None] | None = None,
    ) -> None:
        self.batcher = batcher
        self.delivery = delivery
        self.stats = stats
        self.host = host
        # Told when a topic's first record starts a batch: its linger timer starts now.
        self.on_new_batch = on_new_batch

    # -- in --------------------------------------------------------------------------------

    def parts(
        self, origin: Origin, track: FileTrack, source: str, parts: list[Columns | LineRun]
    ) -> None:
        """What ``Tail.feed_parts`` gave, in order."""
        for part in parts:
            if isinstance(part, LineRun):
                self.run(origin, track, source, part)
            else:
                self.columns(origin, track, source, *part)

    def events(self, origin: Origin, track: FileTrack, source: str, events: list[Event]) -> None:
        """Events as ``Tail.feed``/``flush`` give them."""
        if events:
            self.columns(
                origin,
                track,
                source,
                [e.offset for e in events],
                [e.end for e in events],
                [e.text for e in events],
            )

    def columns(
        self,
        origin: Origin,
        track: FileTrack,
        source: str,
        offsets: list[int],
        ends: list[int],
        texts: list[str],
    ) -> None:
        """Events ``[offsets[i], ends[i])`` with ``texts[i]`` as records, into the batcher."""
        if not texts:
            return
        topic = origin.topic
        fresh = topic not in self.batcher.pending
        records, errors = to_records(
            origin.parser,
            origin.fields,
            texts,
            offsets,
            now_ns=time.time_ns(),
            host=self.host,
            source=source,
            file_id=track.file_id,
        )
        self.stats.parse_errors += errors
        sizes = [e - o for o, e in zip(offsets, ends, strict=True)]
        for cut in self.batcher.add_many(topic, track, records, ends, sizes, time.monotonic()):
            self.delivery.dispatch(cut)
        self.stats.events += len(records)
        if fresh:
            self._started()

    def run(self, origin: Origin, track: FileTrack, source: str, lines: LineRun) -> None:
        """A run of whole lines into the batcher as one part, the zero-copy path
        (``shipper.runs``); line by line for a parser without a block form."""
        runs = origin.runs
        if not runs.takes_runs:
            texts = lines.blob.decode("utf-8").split("\n")
            ends = list(
                accumulate(map(_PLUS_ONE, map(len, lines.blob.split(b"\n"))), initial=lines.offset)
            )
            self.columns(origin, track, source, ends[:-1], ends[1:], texts)
            return
        topic = origin.topic
        fresh = topic not in self.batcher.pending
        run, errors = runs.part(
            lines, now_ns=time.time_ns(), host=self.host, source=source, file_id=track.file_id
        )
        self.stats.parse_errors += errors
        for cut in self.batcher.add_run(topic, track, run, time.monotonic()):
            self.delivery.dispatch(cut)
        self.stats.events += lines.lines
        if fresh:
            self._started()

    def _started(self) -> None:
        if self.on_new_batch is not None:
            self.on_new_batch()

    # -- out -------------------------------------------------------------------------------

    def cut_all(self) -> None:
        """Send every pending batch now (a shutdown, a reload, the end of a stream)."""
        for cut in self.batcher.cut_all():
            self.delivery.dispatch(cut)

    def holds(self, file_id: str) -> bool:
        """Whether a pending batch holds records of ``file_id``."""
        return self.batcher.holds(file_id)

    def linger(self, reading: bool) -> float:
        """How long a pending batch may wait to fill now (see ``IDLE_LINGER_S``); ``reading``:
        whether files still have bytes to read."""
        d = self.delivery
        idle = not reading and not d.outbox and d.build_q.empty()
        linger = self.batcher.linger_s
        return min(linger, IDLE_LINGER_S) if idle else linger

    def linger_due(self, reading: bool) -> float | None:
        """When the oldest pending batch has waited long enough (monotonic seconds)."""
        return self.batcher.next_due(self.linger(reading))

    def cut_lingering(self, now: float, reading: bool) -> None:
        """Send the batches that waited long enough."""
        for cut in self.batcher.due(now, self.linger(reading)):
            self.delivery.dispatch(cut)

    # -- back-pressure ---------------------------------------------------------------------

    def room(self) -> bool:
        """Whether reading may go on: memory (or spool) left in the outbox, few cut batches
        waiting for the builder, none held for a checkpoint."""
        d = self.delivery
        return d.outbox.has_room() and d.build_q.qsize() < BUILD_AHEAD and not d.held

    async def wait_room(self) -> None:
        """Until ``room``: woken by the outbox (an ack freed memory) or the builder (a batch
        left the build queue), never by polling, so reading resumes the moment it may."""
        d = self.delivery
        while not self.room():
            if not d.outbox.has_room():
                await d.outbox.wait_room()
            elif d.held:
                await d.wait_released()
            else:
                await d.wait_built()
