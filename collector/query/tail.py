"""Live tail over the storage interface: where each partition's tail starts, the cursor a
client resumes from, reading what became durable since, and the last ``n`` records before.

The storage calls a listener on its own thread after every durable commit; ``TailHub`` turns
that into an ``asyncio.Event`` per open tail (``call_soon_threadsafe``), so a tail wakes within
a loop turn of the ack instead of polling. New records are read off the loop, from each
partition's last sent offset to its durable end.

The cursor (``topic:partition:offset,...``) is the next offset per partition; together with the
offsets of the records received after it, a client can reconnect with ``from=`` and continue
without a gap or a repeat, even across a collector restart.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from collector.query.merge import iter_hits
from collector.query.search import hit_row
from collector.query.selection import Selection
from collector.storage.interface import Storage
from collector.storage.scan import ScanStats, Watch
from wharf.errors import InvalidArgument, OffsetOutOfRange, UnknownTopic

# One read sends at most this many records before the next read continues: bounds the memory
# a burst can take and lets heartbeats and disconnect checks in between.
_READ_RECORDS: Final = 5_000
DEFAULT_HEARTBEAT_S: Final = 5.0

Position = tuple[str, int]


@dataclass(eq=False)
class _Waiter:
    topics: frozenset[str] | None  # None: every topic, present and future
    event: asyncio.Event = field(default_factory=asyncio.Event)


class TailHub:
    """Wakes the open tails of a topic when the store makes new records of it durable."""

    def __init__(self) -> None:
        self._waiters: set[_Waiter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: Storage | None = None
        self._closed = False

    def attach(self, store: Storage, loop: asyncio.AbstractEventLoop) -> None:
        """Listen to ``store``'s commits and wake waiters on ``loop``."""
        self._loop = loop
        self._store = store
        store.add_listener(self._on_commit)

    def close(self) -> None:
        """Stop relaying and wake every tail (shutdown)."""
        self._closed = True
        if self._store is not None:
            self._store.remove_listener(self._on_commit)
        self.wake_all()

    def _on_commit(self, topic: str, partition: int, end_offset: int) -> None:
        # On the committer thread: hand over and return at once.
        loop = self._loop
        if self._closed or loop is None or not self._waiters:
            return
        try:
            loop.call_soon_threadsafe(self._wake, topic)
        except RuntimeError:  # the loop is closed
            self._closed = True

    def _wake(self, topic: str) -> None:
        for w in self._waiters:
            if w.topics is None or topic in w.topics:
                w.event.set()

    def wake_all(self) -> None:
        """Wake every tail (shutdown)."""
        for w in self._waiters:
            w.event.set()

    def register(self, topics: list[str] | None) -> _Waiter:
        """A waiter woken by commits to any of ``topics`` (``None``: to any topic at all)."""
        w = _Waiter(None if topics is None else frozenset(topics))
        self._waiters.add(w)
        return w

    def unregister(self, w: _Waiter) -> None:
        """Forget ``w``."""
        self._waiters.discard(w)


def parse_cursor(text: str, topics: list[str]) -> dict[Position, int]:
    """``from=``: ``topic:partition:offset`` items, or ``partition:offset`` for a single topic."""
    out: dict[Position, int] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) == 2 and len(topics) == 1:
            parts = [topics[0], *parts]
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[1:]):
            raise InvalidArgument(
                f"from={item!r}: expected topic:partition:offset (or partition:offset when "
                "tailing one topic)"
            )
        topic, p, o = parts[0], int(parts[1]), int(parts[2])
        if topic not in topics:
            raise InvalidArgument(f"from={item!r}: topic {topic!r} is not being tailed")
        out[(topic, p)] = o
    return out


def format_cursor(positions: dict[Position, int]) -> str:
    """The ``from=`` text for ``positions``."""
    return ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(positions.items()))


def start_positions(
    store: Storage, topics: list[str], resume: dict[Position, int]
) -> dict[Position, int]:
    """Where each partition's tail starts: its durable end, or the resume offset when given
    (raised to the partition start if retention removed it meanwhile)."""
    positions: dict[Position, int] = {}
    for t in topics:
        for part in store.partitions(t):
            positions[(t, part.number)] = part.durable_offset
    for key, offset in resume.items():
        if key not in positions:
            raise InvalidArgument(f"from: topic {key[0]!r} has no partition {key[1]}")
        part = store.partition(*key)
        if offset > part.durable_offset:
            raise OffsetOutOfRange(
                f"from: offset {offset} is past the end of {key[0]}:{key[1]} "
                f"(end is {part.durable_offset})"
            )
        positions[key] = max(offset, part.start_offset)
    return positions


def track_topics(store: Storage, positions: dict[Position, int]) -> dict[Position, int]:
    """For a tail of every topic: the partitions of topics created since it started join at
    their first offset (all they hold is new), those of deleted topics leave."""
    live = set(store.topics())
    known = {t for t, _ in positions}
    moved = {key: pos for key, pos in positions.items() if key[0] in live}
    for topic in live - known:
        try:
            for part in store.partitions(topic):
                moved[(topic, part.number)] = part.start_offset
        except UnknownTopic:  # deleted again meanwhile
            continue
    return moved


def read_new(
    store: Storage, filters: Selection, positions: dict[Position, int], cancel: threading.Event
) -> tuple[bytes, dict[Position, int], bool]:
    """Matching records from ``positions`` to each durable end (worker thread): the NDJSON,
    the new positions, and whether more remain (the record budget ran out)."""
    out = bytearray()
    moved = dict(positions)
    budget = _READ_RECORDS
    for (topic, p), pos in positions.items():
        part = store.partition(topic, p)
        end = part.durable_offset
        if end <= pos:
            continue
        start = max(pos, part.start_offset)
        moved[(topic, p)] = end
        stats = ScanStats()
        for h in part.scan(
            filters.query,
            predicate=filters.predicate,
            from_offset=start,
            to_offset=end,
            stats=stats,
            watch=Watch(cancel),
        ):
            out += hit_row(topic, p, h.offset, h.record)
            budget -= 1
            if budget <= 0:
                moved[(topic, p)] = h.offset + 1
                return bytes(out), moved, True
    return bytes(out), moved, False


def backfill(
    store: Storage,
    filters: Selection,
    positions: dict[Position, int],
    n: int,
    cancel: threading.Event,
) -> bytes:
    """The last ``n`` matching records before ``positions``, oldest first (worker thread)."""
    hits = list(
        islice(
            iter_hits(
                store,
                filters.topics,
                filters.query,
                filters.predicate,
                desc=True,
                cancel=cancel,
                stats=ScanStats(),
                ends=positions,
            ),
            n,
        )
    )
    return b"".join(hit_row(h.topic, h.partition, h.offset, h.record) for h in reversed(hits))
