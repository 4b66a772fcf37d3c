"""Where a network input's records go: batches appended through the storage interface, durable
before anyone is told so, with bounded memory.

Records from every connection of one input gather per partition (``partition_for(host)``, as
a shipper's batches are placed) and leave as batches:

- a sender that waits for an acknowledgement (a forward chunk, an OTLP or Loki request) calls
  ``put(records, durable=True)``: its records are appended as soon as their partition is free, together
  with whatever else arrived meanwhile (group commit: under load, batches grow while the
  previous append is in flight), and the call returns once the batch is durable, or raises the
  store's error (the sender gets no ack and sends again);
- a sender that gets no acknowledgement (syslog) calls ``put(records)``: it returns once the
  records are queued; they leave after ``linger_ms`` or when a batch is full, like a Kafka
  producer's ``linger.ms``. An append that fails with a retriable error (a full disk, a
  cluster without a leader) is retried with backoff while the records hold their memory, so
  the sockets stop rather than lines being lost; other errors, and ``close()``, drop them
  (counted);
- ``offer(records)`` (UDP) never waits: with no room the records are dropped and counted.

Memory: the bytes of records queued, being built and being appended are reserved from
``max_pending_bytes`` (``collector.admission.FrameBudget``, first fit in arrival order). A
``put`` that does not fit waits — its connection reads nothing more meanwhile (TCP
backpressure). HTTP inputs ask ``has_room`` first and answer 503 with Retry-After instead.

Batches of one partition are built and submitted one at a time, in order (the store commits
in submission order), so records of one connection keep their order in their partition.
Building (encoding and zstd) runs on a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Final

from collector.admission import FrameBudget
from collector.metrics import InputCounters
from collector.storage.interface import Storage
from wharf import batch as wb
from wharf.errors import StoreError, WharfError
from wharf.record import Record
from wharf.topics import partition_for

log = logging.getLogger(__name__)

# A batch leaves when it holds this many records or line bytes (a shipper's batches are of the
# same order: big enough to compress well, small enough to be acknowledged within milliseconds).
MAX_BATCH_RECORDS: Final = 16_384
MAX_BATCH_BYTES: Final = 4 << 20
# What a record costs beyond its line: the fields' keys and values, the columns, the objects.
RECORD_OVERHEAD: Final = 256
# A failed append of records nobody waits for is tried again after this long, doubling.
RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 10.0


def record_size(record: Record) -> int:
    """The bytes a queued record is charged for (its line, fields and overhead, estimated
    without encoding anything)."""
    size = len(record.line) + RECORD_OVERHEAD
    for key, value in record.fields.items():
        size += len(key) + (len(value) if isinstance(value, str) else _value_size(value))
    return size


def _value_size(value: object) -> int:
    """A field value that is not a string: 16 bytes, or what its items take (a list or a map,
    as OTLP attributes and Fluent records hold, may be far larger than 16 bytes)."""
    if isinstance(value, list | tuple):
        return 16 + sum(len(v) if isinstance(v, str) else _value_size(v) for v in value)
    if isinstance(value, dict):
        return 16 + sum(
            len(str(k)) + (len(v) if isinstance(v, str) else _value_size(v))
            for k, v in value.items()
        )
    return 16


class _Pending:
    """Records queued for one partition, and the future their senders wait on."""

    __slots__ = ("awaited", "bytes", "done", "due", "records", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.records: list[Record] = []
        self.bytes = 0
        self.due = False  # leave as soon as the partition is free (someone waits, or linger)
        self.awaited = False  # a sender waits for it: a failure is theirs to retry
        self.done: asyncio.Future[None] = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None

    @property
    def full(self) -> bool:
        return len(self.records) >= MAX_BATCH_RECORDS or self.bytes >= MAX_BATCH_BYTES


class Sink:
    """Appends one input's records to ``topic`` (see the module docstring)."""

    def __init__(
        self,
        store: Storage,
        topic: str,
        counters: InputCounters,
        pool: Executor,
        *,
        linger_s: float,
        max_pending_bytes: int,
    ) -> None:
        self.store = store
        self.topic = topic
        self.counters = counters
        self.pool = pool
        self.linger_s = linger_s
        self.budget = FrameBudget(max_pending_bytes)
        self._partitions = 1
        # Per partition: batches waiting their turn, oldest first; only the last takes records.
        self._queues: dict[int, deque[_Pending]] = {}
        self._busy: set[int] = set()  # partitions with an append in progress
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def __repr__(self) -> str:
        queued = sum(len(p.records) for q in self._queues.values() for p in q)
        return f"<Sink {self.topic} queued={queued} busy={sorted(self._busy)} {self.budget!r}>"

    async def start(self) -> None:
        """Create the topic unless it exists (so a bad topic or a full disk shows at start)."""
        config = await asyncio.get_running_loop().run_in_executor(
            self.pool, self.store.ensure_topic, self.topic
        )
        self._partitions = config.partitions

    def has_room(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more would be taken without waiting (HTTP inputs answer 503
        otherwise)."""
        return not self.budget.waiting and self.budget.used + nbytes <= self.budget.capacity

    async def put(self, records: Sequence[Record], *, durable: bool = False) -> None:
        """Queue ``records`` (waiting for room); with ``durable``, return once they are
        durable (raises the store's ``WharfError`` when the append failed)."""
        groups = self._group(records)
        size = sum(nbytes for _, nbytes in groups.values())
        if not size:
            return
        await self.budget.acquire(size)
        waits = self._queue(groups, durable)
        if durable:
            await asyncio.gather(*(asyncio.shield(f) for f in waits))

    def offer(self, records: Sequence[Record]) -> bool:
        """Queue ``records`` if there is room now; ``False`` (nothing queued) if not."""
        groups = self._group(records)
        size = sum(nbytes for _, nbytes in groups.values())
        if not self.has_room(size):
            return False
        self.budget.used += size  # it fits and nobody waits: what FrameBudget.acquire would do
        self._queue(groups, durable=False)
        return True

    def _group(self, records: Sequence[Record]) -> dict[int, tuple[list[Record], int]]:
        """Records by partition, with the bytes each group is charged."""
        groups: dict[int, tuple[list[Record], int]] = {}
        for r in records:
            part = partition_for(r.host, self._partitions)
            rs, nbytes = groups.get(part, ([], 0))
            rs.append(r)
            groups[part] = (rs, nbytes + record_size(r))
        return groups

    def _queue(
        self, groups: dict[int, tuple[list[Record], int]], durable: bool
    ) -> list[asyncio.Future[None]]:
        """Add records to their partitions' open batches; the futures of those batches."""
        if self._closing:
            self.budget.release(sum(nbytes for _, nbytes in groups.values()))
            raise StoreError(f"the input for topic {self.topic!r} is closing")
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for part, (rs, nbytes) in groups.items():
            queue = self._queues.setdefault(part, deque())
            if not queue or queue[-1].full:
                queue.append(_Pending(loop))
            pending = queue[-1]
            pending.records.extend(rs)
            pending.bytes += nbytes
            pending.awaited = pending.awaited or durable
            pending.due = pending.due or durable or self.linger_s <= 0
            waits.append(pending.done)
            if not pending.due and pending.timer is None and not pending.full:
                pending.timer = loop.call_later(self.linger_s, self._expire, part, pending)
            self._kick(part)
        return waits

    def _expire(self, part: int, pending: _Pending) -> None:
        pending.timer = None
        pending.due = True
        self._kick(part)

    def _kick(self, part: int) -> None:
        """Start the partition's next append if it is free and its oldest batch may leave
        (a batch that is not the last, or full, always may)."""
        queue = self._queues.get(part)
        if part in self._busy or not queue:
            return
        head = queue[0]
        if not (head.due or head.full or len(queue) > 1 or self._closing):
            return
        queue.popleft()
        if not queue:
            del self._queues[part]
        if head.timer is not None:
            head.timer.cancel()
            head.timer = None
        self._busy.add(part)
        task = asyncio.get_running_loop().create_task(self._append(part, head))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _append(self, part: int, pending: _Pending) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST_S
        try:
            while True:
                try:
                    data = await loop.run_in_executor(self.pool, wb.build, pending.records)
                    result = await asyncio.wrap_future(self.store.submit(self.topic, part, data))
                except WharfError as exc:
                    error: WharfError = exc
                except OSError as exc:
                    error = StoreError(f"cannot store in topic {self.topic!r}: {exc}")
                else:
                    self.counters.add("stored", result.record_count)
                    pending.done.set_result(None)
                    return
                if pending.awaited or self._closing or not error.retriable:
                    log.error(
                        "input append of %d records to %s/%d failed: %s",
                        len(pending.records),
                        self.topic,
                        part,
                        error,
                    )
                    if not pending.awaited:
                        self.counters.add("dropped", len(pending.records))
                    pending.done.set_exception(error)
                    pending.done.exception()  # retrieved: the senders may be gone
                    return
                log.warning(
                    "input append to %s/%d failed, retrying in %.1f s: %s",
                    self.topic,
                    part,
                    delay,
                    error,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        except asyncio.CancelledError:  # close() gave up on it
            if not pending.awaited:
                self.counters.add("dropped", len(pending.records))
            pending.done.set_exception(StoreError(f"input for {self.topic!r} closed"))
            pending.done.exception()
            raise
        finally:
            self.budget.release(pending.bytes)
            self._busy.discard(part)
            self._kick(part)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Append what is queued and wait for every append (at most ``timeout_s``); records
        still not stored then are dropped and counted."""
        self._closing = True
        for part in list(self._queues):
            self._kick(part)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._tasks:  # an append that ends starts its partition's next one
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                for task in self._tasks:
                    task.cancel()
                await asyncio.wait(set(self._tasks))
                break
            await asyncio.wait(set(self._tasks), timeout=left)
        for queue in self._queues.values():
            for pending in queue:
                self.counters.add("dropped", len(pending.records))
                self.budget.release(pending.bytes)
        self._queues.clear()
