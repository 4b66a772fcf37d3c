"""The storage interface: what the query engine, ingest and the HTTP layer need of a backend.

Two backends are meant to implement it: the embedded store (``collector.storage.Store``: topic,
partition and segment files on this machine) and a replicated one (NATS JetStream: a stream per
partition whose messages are Wharf batches). So nothing here may assume local files: a batch is
named by its offsets and described by what an index knows (time range, count, stored size),
read whole as bytes in the batch format, and filtered where it is read (``scan`` and ``count``
take the line query, so a backend can prune and match next to its data).

The operations:

- topics: list, describe, create (with settings), create on first write, delete;
- append a batch with dedupe (``submit``: the backend drops records below the per-(producer,
  file) high-water mark and acknowledges once the batch is durable);
- read batches from an offset (``Partition.read``), plan batches by time (``Partition.refs``),
  find the offset for a time, describe partitions;
- scan one partition and count many with the filters pushed down (hosts and sources are pruned
  on each batch's dictionaries, before it is decompressed);
- subscribe to commits (``add_listener``: called with topic, partition and the new durable end
  after every commit, on the backend's own thread);
- retention, health (``flush``: the backend answers; ``health``: what refuses writes) and
  close.

Protocols, not base classes: the embedded store satisfies them structurally, and mypy checks it
where the server hands a ``Store`` to code typed against ``Storage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Protocol

from collector.filters.query import Predicate, Query
from collector.storage.partition import AppendResult
from collector.storage.scan import ScanHit, ScanStats, Watch
from wharf import batch as wb
from wharf.api import CompactResult, PartitionInfo, TopicInfo
from wharf.topics import TopicConfig

CommitListener = Callable[[str, int, int], None]


class BatchSpan(Protocol):
    """One stored batch as the index knows it, without reading it."""

    @property
    def base_offset(self) -> int:
        """Offset of the batch's first record."""
        ...

    @property
    def count(self) -> int:
        """Records in the batch."""
        ...

    @property
    def min_ts(self) -> int:
        """Earliest record time (ns)."""
        ...

    @property
    def max_ts(self) -> int:
        """Latest record time (ns)."""
        ...

    @property
    def stored_bytes(self) -> int:
        """Size of the stored (compressed) batch."""
        ...

    def load(self) -> wb.Batch:
        """Read and check the stored batch (``CorruptBatch`` when damaged)."""
        ...

    def may_contain(self, tokens: Sequence[bytes]) -> bool:
        """``False`` only when the batch certainly lacks one of ``tokens`` (its token filter
        says so: ``collector.filters.tokens``)."""
        ...


class PartitionReader(Protocol):
    """One partition of a topic, for reading."""

    @property
    def number(self) -> int:
        """The partition's number within its topic."""
        ...

    @property
    def start_offset(self) -> int:
        """The first offset retention left."""
        ...

    @property
    def durable_offset(self) -> int:
        """The end readers see: one past the last durable (acknowledged) record."""
        ...

    def refs(
        self,
        from_offset: int | None = None,
        *,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> Iterator[BatchSpan]:
        """Durable batches holding ``from_offset`` and later that may hold records in
        ``[min_ts, max_ts]``, in offset order (the plan of a scan: no batch is read)."""
        ...

    def read(self, offset: int, max_bytes: int = 1 << 20) -> list[wb.Batch]:
        """Durable batches from the one holding ``offset``, about ``max_bytes`` of them (at
        least one when any exists)."""
        ...

    def offset_for_time(self, ts: int) -> int:
        """The first offset whose record time is at or after ``ts``; the end if none is."""
        ...

    def info(self) -> PartitionInfo:
        """Offsets, sizes and time range."""
        ...

    def line_bytes(self) -> int:
        """Raw bytes of the stored lines, newlines included (for the compression ratio)."""
        ...

    def scan(
        self,
        query: Query,
        *,
        predicate: Predicate | None = None,
        from_offset: int | None = None,
        to_offset: int | None = None,
        stats: ScanStats | None = None,
        watch: Watch | None = None,
    ) -> Iterator[ScanHit]:
        """Records matching ``query`` and ``predicate`` within ``[from_offset, to_offset)``, in
        offset order. A damaged batch is counted in ``stats.errors`` and skipped."""
        ...


class GroupOffsets(Protocol):
    """Consumer groups' committed offsets: where a backend keeps them (files, a KV bucket)."""

    def names(self) -> list[str]:
        """Groups with commits, sorted."""
        ...

    def load(self, group: str) -> dict[str, dict[str, int]]:
        """``topic -> partition (text) -> next offset`` of ``group`` (``UnknownGroup`` when it
        has none)."""
        ...

    def update(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Set the committed offsets of some partitions of ``topic`` (atomically)."""
        ...


class Storage(Protocol):
    """A backend: topics of partitions, appends with dedupe, reads, scans, commit events."""

    def topics(self) -> list[str]:
        """Topic names, sorted."""
        ...

    def describe(self, topic: str) -> TopicInfo:
        """Settings and partitions (``UnknownTopic`` when absent)."""
        ...

    def create_topic(self, name: str, config: TopicConfig | None = None) -> TopicInfo:
        """Create a topic (``TopicExists`` when present)."""
        ...

    def ensure_topic(self, name: str) -> TopicConfig:
        """Create the topic with the defaults unless it exists; its settings."""
        ...

    def delete_topic(self, name: str) -> None:
        """Delete a topic and everything in it."""
        ...

    def compact(self, topic: str) -> CompactResult:
        """Compact every sealed segment of ``topic`` now (the embedded store; the cluster
        raises ``InvalidArgument``: JetStream keeps its own files)."""
        ...

    def partitions(self, topic: str) -> Sequence[PartitionReader]:
        """The topic's partitions in order."""
        ...

    def partition(self, topic: str, partition: int) -> PartitionReader:
        """One partition (``InvalidArgument`` when the topic has no such partition)."""
        ...

    def submit(self, topic: str, partition: int, data: bytes) -> Future[AppendResult]:
        """Append a batch (checked bytes in the batch format); the future completes once it is
        durable, with its base offset, or as a duplicate when every record was stored before."""
        ...

    def count(
        self,
        parts: Sequence[tuple[str, int]],
        query: Query,
        *,
        predicate: Predicate | None = None,
        stats: ScanStats | None = None,
        watch: Watch | None = None,
    ) -> list[int]:
        """Records matching ``query`` and ``predicate`` in each ``(topic, partition)`` of
        ``parts`` (``grep -c``); without a predicate nothing is materialized."""
        ...

    def add_listener(self, callback: CommitListener) -> None:
        """Call ``callback(topic, partition, durable_end)`` after every commit."""
        ...

    def remove_listener(self, callback: CommitListener) -> None:
        """Stop calling ``callback``."""
        ...

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Apply every topic's retention; the number of segments (or units) removed."""
        ...

    def flush(self) -> None:
        """Return once the backend takes writes (the health check)."""
        ...

    def health(self) -> list[str]:
        """What keeps the backend from taking some writes (a partition offline after a failed
        write), one line each; empty when healthy. May retry what failed, so that a health
        check also brings a partition back once the cause is gone."""
        ...

    def backend_status(self) -> dict[str, object]:
        """What ``/v1/status`` shows of the backend (``{"backend": name, ...}``)."""
        ...

    def close(self) -> None:
        """Release everything; pending appends fail with ``StoreClosed``."""
        ...
