"""The outbox: every built batch, in build order, until the collector acknowledges it.

Batches live in memory while the collector keeps up. When the bytes held pass
``memory_bytes`` (the collector is slow or away), the outbox starts *spooling*: it first writes
every batch not yet acknowledged (those in flight too) to the disk spool, in order, and then
every new batch, until the spool is empty again. So at any moment, for every file, the spool
holds a contiguous run of its spans starting at or before its acknowledged offset, and a restart
can replay the spool and resume reading each file where the spool ends, with no gap and
nothing out of order. The order of batches is one sequence whatever their location: the
collector keeps a file's spans in order, and the outbox never reorders.

Room: readers stop when memory is full and the spool is full (or disabled): bounded memory,
bounded disk, and the log files themselves hold the rest.
"""

from __future__ import annotations

import asyncio
from collections import deque

from shipper.spool import OutBatch, Spool


class Outbox:
    """Ordered queue of ``OutBatch`` with memory and disk bounds (see the module docstring)."""

    def __init__(self, spool: Spool | None, memory_bytes: int) -> None:
        self.spool = spool
        self.memory_bytes = memory_bytes
        self.mem = 0  # bytes of batch data held in memory (queued or in flight)
        self.spooling = False
        self._queue: deque[OutBatch] = deque()
        self._unacked: dict[int, OutBatch] = {}  # handed to the sender, not yet done
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()

    def restore(self, items: list[OutBatch]) -> None:
        """Queue the spool's items from an earlier run (before anything new)."""
        for item in items:
            self._queue.append(item)
        if items:
            self.spooling = True
            self._changed()

    def __len__(self) -> int:
        return len(self._queue) + len(self._unacked)

    @property
    def queued(self) -> int:
        """Batches not yet handed to the sender."""
        return len(self._queue)

    def has_room(self) -> bool:
        """Whether readers may produce more."""
        if self.mem < self.memory_bytes:
            return True
        return self.spool is not None and self.spool.max_bytes > 0 and not self.spool.full

    async def wait_room(self) -> None:
        """Wait until ``has_room``."""
        while not self.has_room():
            self._room.clear()
            await self._room.wait()

    def put(self, item: OutBatch) -> None:
        """Append a built batch (``item.data`` set)."""
        assert item.data is not None
        can_spool = self.spool is not None and self.spool.max_bytes > 0
        if not self.spooling and can_spool and self.mem + item.size > self.memory_bytes:
            self._start_spooling()
        if self.spooling and self.spool is not None and self.spool.write(item):
            item.data = None
        else:
            self.mem += item.size
        self._queue.append(item)
        self._changed()

    def _start_spooling(self) -> None:
        assert self.spool is not None
        self.spooling = True
        for item in sorted(self._unacked.values(), key=lambda i: i.seq):
            if not item.spooled and item.data is not None:
                self.spool.write(item)  # stays in memory too: the sender holds it
        for item in self._queue:
            if not item.spooled and item.data is not None and self.spool.write(item):
                self.mem -= item.size
                item.data = None

    async def get(self) -> OutBatch:
        """The next batch in order, its data loaded; it counts as in flight until ``done``."""
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            item = self._queue.popleft()
            if item.data is None:
                assert self.spool is not None
                data = await asyncio.to_thread(self.spool.read, item)
                if data is None:
                    self._changed()
                    continue  # damaged on disk: dropped and counted by the spool
                item.data = data
                self.mem += item.size
            self._unacked[item.seq] = item
            return item

    def done(self, item: OutBatch) -> None:
        """The batch is acknowledged (or refused for good): release it."""
        self._unacked.pop(item.seq, None)
        if item.data is not None:
            self.mem -= item.size
            item.data = None
        if self.spool is not None:
            self.spool.remove(item)
            if self.spooling and self.spool.count == 0 and not self._any_unspooled():
                self.spooling = False
        self._changed()

    def _any_unspooled(self) -> bool:
        return any(not i.spooled for i in self._queue) or any(
            not i.spooled for i in self._unacked.values()
        )

    def _changed(self) -> None:
        if self._queue:
            self._ready.set()
        if self.has_room():
            self._room.set()
        if not self._queue and not self._unacked:
            self._empty.set()
        else:
            self._empty.clear()

    async def wait_empty(self) -> None:
        """Wait until every batch is done."""
        await self._empty.wait()

    def spill_all(self) -> int:
        """Shutdown without a collector: write whatever is only in memory to the spool, so
        a restart sends it. Returns how many batches could not be spooled."""
        lost = 0
        if self.spool is None or self.spool.max_bytes <= 0:
            return len(self)
        for item in sorted([*self._unacked.values(), *self._queue], key=lambda i: i.seq):
            if not item.spooled and (item.data is None or not self.spool.write(item)):
                lost += 1
        return lost
