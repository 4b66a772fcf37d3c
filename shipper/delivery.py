"""Batches out: cut batches get a sequence number and their spans recorded, are built (in a
worker thread, or in builder processes: ``shipper.building``), queued in the outbox in order,
handed to the ``Producer`` within the window, and their acknowledgements move each file's
checkpoint offset (``FileTrack.ack``).

Order is the invariant the collector's exactly-once depends on: per file, spans leave in the
order they were cut. The builder task may have several builds running, but it puts their
batches into the outbox in sequence order only; one sender task hands them on, FIFO; and the
queue of cuts *held* while ``before_send`` refuses them (a batch of a file whose id is in no
saved checkpoint yet, while checkpoint writes fail) makes every later cut wait behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from shipper.batcher import Cut
from shipper.building import Builder, Built, ThreadBuilder
from shipper.files import FileTable
from shipper.outbox import Outbox
from shipper.spool import OutBatch
from shipper.status import Stats
from shipper.transport import DeliveryError, Producer
from wharf import batch as wb
from wharf.errors import WharfError

log = logging.getLogger(__name__)


class Delivery:
    """Build, send and acknowledge batches (see the module docstring)."""

    def __init__(
        self,
        *,
        files: FileTable,
        outbox: Outbox,
        stats: Stats,
        host: str,
        before_send: Callable[[Cut], bool],
        after_ack: Callable[[], None],
        on_fatal: Callable[[str], None],
    ) -> None:
        self.files = files
        self.outbox = outbox
        self.stats = stats
        self.host = host
        self.before_send = before_send
        self.after_ack = after_ack
        self.on_fatal = on_fatal
        self.producer_id = bytes(16)
        self.producer: Producer | None = None
        self.window: asyncio.Semaphore | None = None
        self.seq = 1
        self.build_q: asyncio.Queue[tuple[int, Cut]] = asyncio.Queue()
        self.builds: Builder = ThreadBuilder()  # or ``ProcessBuilders``, set before start
        self._built = asyncio.Event()  # set whenever the builder finishes a batch
        self.deliveries: set[asyncio.Task[None]] = set()
        self.closing = False  # shutting down: a failed send means "not acknowledged", no drop
        self.held: deque[Cut] = deque()  # cuts ``before_send`` refused for now, in order
        self._released = asyncio.Event()  # set whenever ``held`` empties

    def dispatch(self, cut: Cut) -> None:
        """Give ``cut`` its sequence number, record its spans, queue it for building; or hold
        it, behind any cut held already, while ``before_send`` refuses it."""
        if self.held or not self.before_send(cut):
            self.held.append(cut)
            return
        self._dispatch(cut)

    def release_held(self) -> None:
        """Dispatch the held cuts ``before_send`` now lets go, in order."""
        while self.held and self.before_send(self.held[0]):
            self._dispatch(self.held.popleft())
        if not self.held:
            self._released.set()

    async def wait_released(self) -> None:
        """Until no cut is held."""
        while self.held:
            self._released.clear()
            await self._released.wait()

    def _dispatch(self, cut: Cut) -> None:
        seq = self.seq
        self.seq += 1
        for track, end in cut.tracks:
            f = self.files.follower_of(track.file_id)
            check = f.check_at(end) if f is not None and f.track is track else -1
            track.sent(seq, end, check)
        self.build_q.put_nowait((seq, cut))
        self.stats.batches_built += 1

    async def builder(self) -> None:
        """Build cut batches, up to ``builds.capacity`` at once, into the outbox in order."""
        running: deque[tuple[int, Cut, asyncio.Task[Built | WharfError]]] = deque()
        loop = asyncio.get_running_loop()
        taking: asyncio.Task[tuple[int, Cut]] | None = None
        try:
            while True:
                if taking is None and len(running) < self.builds.capacity:
                    taking = loop.create_task(self.build_q.get())
                waits: list[asyncio.Task[Any]] = [] if taking is None else [taking]
                if running:
                    waits.append(running[0][2])  # results leave in order: the oldest first
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if taking is not None and taking.done():
                    seq, cut = taking.result()
                    taking = None
                    running.append((seq, cut, loop.create_task(self._build(seq, cut))))
                while running and running[0][2].done():
                    seq, cut, task = running.popleft()
                    self._built_one(seq, cut, task.result())
        finally:
            if taking is not None:
                taking.cancel()
            for _, _, task in running:
                task.cancel()

    async def _build(self, seq: int, cut: Cut) -> Built | WharfError:
        """A build's batch, or the error that says it cannot be built (then dropped)."""
        try:
            return await self.builds.build(
                cut,
                producer_id=self.producer_id,
                seq=seq,
                version=self.producer.batch_version if self.producer else wb.VERSION,
            )
        except WharfError as exc:
            return exc

    def _built_one(self, seq: int, cut: Cut, built: Built | WharfError) -> None:
        if isinstance(built, WharfError):
            log.error("cannot build batch %d (%s): %d records dropped", seq, built, cut.count)
            self.stats.dropped_batches_refused += 1
            self.acked(OutBatch(seq, cut.topic, self.host, cut.spans, 0, 0))
        else:
            self.stats.parse_errors += built.parse_errors
            self.outbox.put(
                OutBatch(
                    seq, cut.topic, self.host, cut.spans, cut.count, len(built.data), built.data
                )
            )
        self.build_q.task_done()
        self._built.set()

    async def wait_built(self) -> None:
        """Until the builder finishes its next batch (readers waiting for ``build_q`` to drain)."""
        self._built.clear()
        await self._built.wait()

    async def sender(self) -> None:
        """Hand batches to the producer in order, at most ``window`` unacknowledged."""
        assert self.window is not None
        loop = asyncio.get_running_loop()
        while True:
            item = await self.outbox.get()
            await self.window.acquire()
            # Tasks start in creation order and Producer.send queues without yielding while
            # the window has room (ours is the same size), so the wire order is this order.
            task = loop.create_task(self._deliver(item))
            self.deliveries.add(task)
            task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self.deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Not a refusal (``_deliver`` handles those) but a bug: its batch would never be
            # acknowledged and its files' checkpoints would stop moving, silently.
            exc = task.exception()
            log.error("delivering a batch failed", exc_info=exc)
            self.on_fatal(f"internal error: delivering a batch failed ({exc!r}); exiting")

    async def _deliver(self, item: OutBatch) -> None:
        assert self.producer is not None and self.window is not None and item.data is not None
        try:
            ack = await self.producer.send(item.topic, item.data, key=item.key)
        except DeliveryError as exc:
            if self.closing:
                return
            if getattr(self.producer, "_fatal", None) is not None:
                # The collector refuses this shipper (bad token): nothing is dropped, the
                # process exits non-zero with the reason and the spool/files keep the data.
                self.on_fatal(f"collector refused the shipper: {exc}")
                return
            log.error(
                "batch %d refused for good (%s): %d records dropped", item.seq, exc, item.records
            )
            self.stats.dropped_batches_refused += 1
            self.acked(item)
            return
        finally:
            self.window.release()
        self.stats.batches_acked += 1
        self.stats.records_acked += ack.record_count
        if ack.duplicate:
            self.stats.duplicate_batches += 1
        self.acked(item)

    def acked(self, item: OutBatch) -> None:
        """The collector has ``item`` (or refused it for good): advance the files' offsets."""
        for span in item.spans:
            track = self.files.tracks.get(span.file_id)
            if track is None:
                continue
            if track.ack(item.seq):
                f = self.files.follower_of(span.file_id)
                if f is not None and f.forced:
                    f.forced = [b for b in f.forced if b > track.acked]
            self.files.forget_track(track)
        self.outbox.done(item)
        self.after_ack()

    async def stop(self) -> None:
        """Cancel the tasks in flight and close the producer."""
        self.closing = True
        for t in list(self.deliveries):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.producer is not None:
            await self.producer.close()
