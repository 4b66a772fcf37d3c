"""``wharf ship``: send one file or stdin to a collector and return once every record is acked.

The daemon's send path, driven for one stream: lines are split and, for ``cri``/``docker``,
joined from their fragments (``shipper.tail``), go through the same ``Intake`` (runs of whole
lines as columns, other events as records) into the same ``Batcher``, and the same ``Delivery``
builds the batches off the reading thread, sends them with several in flight and counts the
acknowledgements. Each batch carries the span of input bytes it covers, under a file id made as
the daemon makes them (``shipper.identity``), so a batch resent after a reconnect is not stored
twice. Reading waits while the outbox is full: memory stays bounded however large the input
and however slow (or refusing) the collector.

What differs from the daemon is only what a one-shot run needs: no checkpoints (a batch may
always leave), no spool, no linger (batches are cut by size, the last one at the end), and the
first failure ends the run: a batch refused for good, or the producer giving up (its
``deadline_s``), raises ``DeliveryError`` as soon as it is known, with nothing left running.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from parsers import Parser
from shipper import identity
from shipper.batcher import Batcher, Cut, FileTrack
from shipper.config import ShipperConfig
from shipper.container import FORMATS as CONTAINER_FORMATS
from shipper.delivery import Delivery
from shipper.files import FileTable
from shipper.intake import Intake
from shipper.outbox import Outbox
from shipper.runs import RunParts
from shipper.status import Stats
from shipper.tail import Tail
from shipper.transport import DeliveryError, Producer
from wharf.errors import WharfError

DEFAULT_BATCH_BYTES = 4 << 20  # text per batch: compresses about as well as one zstd stream
_READ_SIZE = 1 << 20

T = TypeVar("T")


@dataclass
class ShipStats:
    """What a run did."""

    records: int = 0
    batches: int = 0
    duplicates: int = 0
    bytes_read: int = 0
    invalid_utf8_lines: int = 0
    truncated_lines: int = 0
    parse_errors: int = 0


@dataclass(frozen=True)
class _Stream:
    """The one input of a run (``shipper.intake.Origin``)."""

    topic: str
    parser: Parser
    runs: RunParts
    fields: dict[str, Any] = field(default_factory=dict)


class _Run:
    """The parts of one run and the first failure that ends it."""

    def __init__(self, producer: Producer, host: str, batch_bytes: int) -> None:
        # The daemon's defaults (line length, memory for built batches); no file is followed.
        self.cfg = ShipperConfig(batch_bytes=batch_bytes)
        self.producer = producer
        self.stats = Stats()
        self.outbox = Outbox(None, self.cfg.memory_queue_bytes)
        self.delivery = Delivery(
            # An empty table: the stream is no followed file, its spans carry no check.
            files=FileTable(self.cfg, [], self.stats),
            outbox=self.outbox,
            stats=self.stats,
            host=host,
            before_send=_always,
            after_ack=self._after_ack,
            on_fatal=self._on_fatal,
        )
        self.delivery.producer = producer
        self.delivery.producer_id = producer.producer_id
        self.delivery.window = asyncio.Semaphore(producer.window)
        # No linger: a batch leaves when it is full, the last one when the stream ends.
        self.intake = Intake(Batcher(batch_bytes, float("inf")), self.delivery, self.stats, host)
        self.failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for coro in (self.delivery.builder(), self.delivery.sender()):
            task = loop.create_task(coro)
            task.add_done_callback(self._task_ended)
            self._tasks.append(task)

    async def stop(self) -> None:
        """Cancel whatever still runs (the caller closes the producer)."""
        self.delivery.closing = True  # a send failing now is no refusal
        tasks = [*self._tasks, *self.delivery.deliveries]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        self._failed.set()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            exc = task.exception()
            self._fail(exc if exc is not None else RuntimeError("a delivery task stopped"))

    def _on_fatal(self, message: str) -> None:
        # The producer gave up (its deadline, or a collector refusing this client): its own
        # error says why. Else a bug in delivery, said by ``message``.
        self._fail(self.producer.failure or WharfError(message))

    def _after_ack(self) -> None:
        dropped = self.stats.dropped_batches_refused
        if dropped:
            # Refused for good by the collector, or one that cannot be built: ``Delivery``
            # logged which and why. The run ends here.
            self._fail(
                DeliveryError(
                    f"{dropped} batch{'es' if dropped > 1 else ''} dropped (see the error "
                    "above): their records are not stored"
                )
            )

    def check(self) -> None:
        """Raise the failure, if there was one."""
        if self.failure is not None:
            raise self.failure

    async def until(self, coro: Coroutine[Any, Any, T]) -> T:
        """``coro``'s result, unless the run fails first (then its failure is raised)."""
        self.check()
        loop = asyncio.get_running_loop()
        work = loop.create_task(coro)
        failed = loop.create_task(self._failed.wait())
        try:
            await asyncio.wait([work, failed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (work, failed):
                t.cancel()
            await asyncio.gather(work, failed, return_exceptions=True)
        self.check()
        return work.result()

    async def settled(self) -> None:
        """Until every cut batch is built and acknowledged."""
        await self.delivery.build_q.join()
        await self.outbox.wait_empty()


def _always(_: Cut) -> bool:
    return True


async def ship(
    stream: BinaryIO,
    *,
    producer: Producer,
    topic: str,
    parser: Parser,
    source: str,
    file_id: str,
    host: str | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> ShipStats:
    """Read ``stream`` to its end, ship every line, wait for every ack. A refused batch, or
    the producer giving up (its ``deadline_s``), raises ``DeliveryError`` as soon as it is
    known, with nothing left running."""
    run = _Run(producer, host or socket.gethostname(), batch_bytes)
    container = parser.name if parser.name in CONTAINER_FORMATS else None
    tail = Tail(0, max_line_bytes=run.cfg.max_line_bytes, container=container, encoding="auto")
    origin = _Stream(topic, parser, RunParts(parser, {}))
    track = FileTrack(file_id, 0)
    intake, stats = run.intake, run.stats
    loop = asyncio.get_running_loop()
    run.start()
    try:
        while True:
            if not intake.room():
                await run.until(intake.wait_room())
            # Not raced with a failure: a thread blocked on a pipe could not be stopped.
            chunk = await loop.run_in_executor(None, stream.read, _READ_SIZE)
            run.check()
            if not chunk:
                break
            stats.bytes_read += len(chunk)
            intake.parts(origin, track, source, tail.feed_parts(chunk, time.monotonic_ns()))
        intake.events(origin, track, source, tail.flush(time.monotonic_ns()))
        intake.cut_all()
        await run.until(run.settled())
    finally:
        await run.stop()
    return ShipStats(
        records=stats.records_acked,
        batches=stats.batches_built,
        duplicates=stats.duplicate_batches,
        bytes_read=stats.bytes_read,
        invalid_utf8_lines=tail.invalid_utf8_lines,
        truncated_lines=tail.truncated_lines,
        parse_errors=stats.parse_errors,
    )


def file_identity(stream: BinaryIO, name: str) -> str:
    """A file id for the spans, made as the daemon makes them (``shipper.identity``: device,
    inode and random bits); a stream that is no file (``name`` unused) gets device and inode
    0."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return identity.new_file_id(0, 0)
    return identity.new_file_id(st.st_dev, st.st_ino)
