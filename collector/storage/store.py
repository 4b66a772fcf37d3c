"""The embedded store: topics of partitions under one data directory, with group commit.

    DATA/topics/<topic>/topic.toml
    DATA/topics/<topic>/<partition>/<base-offset:020d>.{seg,idx,hwm,tok}

All writes go through one committer thread. It takes every append queued since its last turn,
writes them, makes them durable with one fdatasync per touched partition, and only then
resolves their futures: many producers share each fsync (group commit), and an acknowledged
batch is on disk. Reads run in any thread.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import Final

from collector.filters.query import Predicate, Query
from collector.storage import compaction
from collector.storage.compaction import CompactionSettings, Compactor
from collector.storage.files import DEFAULT_CAPACITY, OpenFiles
from collector.storage.partition import AppendResult, Partition, wall_clock_ms
from collector.storage.scan import ScanStats, Watch, count_partitions
from collector.storage.segment import Segment
from collector.storage.topic_config import TopicConfig, load_topic_config, save_topic_config
from collector.storage.workers import ScanWorkers
from wharf import batch as wb
from wharf.api import CompactResult, TopicInfo
from wharf.errors import (
    InvalidArgument,
    StoreClosed,
    StoreError,
    TopicExists,
    UnknownTopic,
    WharfError,
)
from wharf.topics import validate_topic

log = logging.getLogger(__name__)

# One committer turn writes at most this much before it syncs and acks: bounds the latency a
# burst can add to the first batch of the turn.
_MAX_TURN_BYTES: Final = 64 << 20
# A partition taken offline by a failed write is reopened (``Partition.reopen``) at the first
# append or health check after this long, doubling after each failed attempt up to the
# maximum: space freed on a full disk is noticed within seconds, while a disk that stays full
# (or broken) costs one reload of the partition per half minute, not one per resend.
_RETRY_FIRST_S: Final = 1.0
_RETRY_MAX_S: Final = 30.0
# After a write failed for want of space, it is not retried before the disk has this much free:
# retrying would only fail again (and a health check would say "ok" in between).
_SPACE_TO_RETRY: Final = 1 << 20
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


class Fsync(Enum):
    """When an append becomes durable, and so when it is acknowledged."""

    ALWAYS = "always"  # fdatasync before every ack (shared by all appends of one turn)
    INTERVAL = "interval"  # fdatasync at most every ``fsync_interval_ms``; acks wait for it
    NEVER = "never"  # ack after write(): survives a process crash, not a power cut


class _Topic:
    __slots__ = ("config", "dir", "name", "partitions")

    def __init__(
        self,
        directory: Path,
        name: str,
        config: TopicConfig,
        clock_ms: Callable[[], int],
        files: OpenFiles,
        use_filters: bool,
    ) -> None:
        self.dir = directory
        self.name = name
        self.config = config
        self.partitions = [
            Partition(
                directory / str(i),
                i,
                config,
                clock_ms,
                topic=name,
                files=files,
                use_filters=use_filters,
            )
            for i in range(config.partitions)
        ]


class _Task:
    """Work for the committer thread other than an append (flush, retention, roll)."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.future: Future[object] = Future()


_Work = tuple[Partition, bytes, "Future[AppendResult]"] | _Task


class Store:
    """Open with ``Store(data_dir)``; close with ``close()`` (or use it as a context manager)."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        fsync: Fsync | str = Fsync.ALWAYS,
        fsync_interval_ms: int = 5,
        default_config: TopicConfig | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        max_topics: int | None = None,
        max_open_files: int = DEFAULT_CAPACITY,
        compaction_settings: CompactionSettings | None = None,
    ) -> None:
        """``max_topics``: creating a topic past it is refused (``None``: no limit; topics
        already there always open). ``max_open_files``: segment files open at once, shared by
        all partitions (``collector.storage.files``). ``compaction_settings``: the background
        compaction of sealed segments (``None``: none in the background, filters used;
        ``compact`` works either way)."""
        self.data_dir = Path(data_dir)
        self.fsync = Fsync(fsync)
        if fsync_interval_ms < 0:
            raise InvalidArgument(f"fsync_interval_ms must be >= 0, got {fsync_interval_ms}")
        self.fsync_interval = fsync_interval_ms / 1000
        self.default_config = default_config or TopicConfig()
        self.clock_ms = clock_ms
        self.max_topics = max_topics
        self.files = OpenFiles(max_open_files)
        # A committer turn ends once it touched this many partitions: each holds a write
        # descriptor until the turn's sync, and those must stay within the pool.
        self._max_turn_partitions = max(1, max_open_files // 2)
        self._topics: dict[str, _Topic] = {}
        self._topics_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._closed = False
        self._listeners: list[Callable[[str, int, int], None]] = []
        self._workers: ScanWorkers | None = None
        settings = compaction_settings or CompactionSettings(enabled=False)
        self._use_filters = settings.filters
        (self.data_dir / "topics").mkdir(parents=True, exist_ok=True)
        for tdir in sorted((self.data_dir / "topics").iterdir()):
            if tdir.is_dir() and (tdir / "topic.toml").exists():
                name = validate_topic(tdir.name)
                self._topics[name] = _Topic(
                    tdir,
                    name,
                    load_topic_config(tdir / "topic.toml"),
                    clock_ms,
                    self.files,
                    self._use_filters,
                )
        self._committer = threading.Thread(target=self._run, name="wharf-committer", daemon=True)
        self._committer.start()
        self.compactor = Compactor(settings, self._all_partitions, self._install)
        self.compactor.start()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- topics ---------------------------------------------------------------------------

    def create_topic(self, name: str, config: TopicConfig | None = None) -> TopicInfo:
        """Create a topic; ``TopicExists`` if it is there already, ``StoreError`` (retriable)
        past ``max_topics`` or when its files cannot be made (a full disk): then nothing of it
        is left behind."""
        validate_topic(name)
        config = config or self.default_config
        with self._topics_lock:
            if name in self._topics:
                raise TopicExists(f"topic {name!r} exists already")
            if self.max_topics is not None and len(self._topics) >= self.max_topics:
                raise StoreError(
                    f"cannot create topic {name!r}: the collector holds {len(self._topics)} "
                    f"topics, its limit (limits.max_topics = {self.max_topics}); delete a "
                    "topic or raise the limit"
                )
            tdir = self.data_dir / "topics" / name
            made = not tdir.exists()  # else left by a crash mid-create: reuse what it holds
            try:
                tdir.mkdir(parents=True, exist_ok=True)
                save_topic_config(config, tdir / "topic.toml")
                self._topics[name] = _Topic(
                    tdir, name, config, self.clock_ms, self.files, self._use_filters
                )
            except OSError as exc:
                if made:
                    shutil.rmtree(tdir, ignore_errors=True)
                else:
                    (tdir / "topic.toml").unlink(missing_ok=True)
                    (tdir / "topic.toml.tmp").unlink(missing_ok=True)
                raise StoreError(f"cannot create topic {name!r}: {exc.strerror or exc}") from exc
        return self.describe(name)

    def ensure_topic(self, name: str) -> TopicConfig:
        """The topic's config, creating it with defaults on first use."""
        try:
            return self._topic(name).config
        except UnknownTopic:
            try:
                return self.create_topic(name).config
            except TopicExists:
                return self._topic(name).config

    def delete_topic(self, name: str) -> None:
        """Remove a topic and all its data (after in-flight appends finish)."""
        with self._topics_lock:
            topic = self._topics.pop(validate_topic(name), None)
        if topic is None:
            raise UnknownTopic(f"no topic {name!r}")
        self.flush()
        for p in topic.partitions:
            p.close()
        shutil.rmtree(topic.dir)

    def topics(self) -> list[str]:
        """Topic names, sorted."""
        return sorted(self._topics)

    def _topic(self, name: str) -> _Topic:
        validate_topic(name)
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(f"no topic {name!r}") from None

    def partition(self, topic: str, partition: int) -> Partition:
        """The partition object (for readers)."""
        t = self._topic(topic)
        if not 0 <= partition < len(t.partitions):
            raise InvalidArgument(
                f"topic {topic!r} has partitions 0..{len(t.partitions) - 1}, not {partition}"
            )
        return t.partitions[partition]

    def partitions(self, topic: str) -> list[Partition]:
        """All partitions of a topic."""
        return list(self._topic(topic).partitions)

    def describe(self, topic: str) -> TopicInfo:
        """Settings and per-partition offsets, sizes and time spans."""
        t = self._topic(topic)
        return TopicInfo(t.name, t.config, [p.info() for p in t.partitions])

    # -- writing --------------------------------------------------------------------------

    def submit(self, topic: str, partition: int, data: bytes) -> Future[AppendResult]:
        """Queue one batch; the future resolves once it is durable (per the fsync policy)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        fut: Future[AppendResult] = Future()
        self._queue.put((self.partition(topic, partition), data, fut))
        return fut

    def append(self, topic: str, partition: int, data: bytes) -> AppendResult:
        """Append one batch and wait until it is durable."""
        return self.submit(topic, partition, data).result()

    def add_listener(self, callback: Callable[[str, int, int], None]) -> None:
        """Call ``callback(topic, partition, end_offset)`` on the committer thread each time
        new records become durable (and so readable). It must be quick and must not block:
        hand over to another thread or loop (``loop.call_soon_threadsafe``)."""
        # Copy on write: the committer iterates the list it saw, never one being changed.
        self._listeners = [*self._listeners, callback]

    def remove_listener(self, callback: Callable[[str, int, int], None]) -> None:
        """Stop calling ``callback`` (no error if it was not added). A commit already being
        announced may still call it once."""
        self._listeners = [cb for cb in self._listeners if cb != callback]

    # -- counting -------------------------------------------------------------------------

    def use_workers(self, workers: ScanWorkers | None) -> None:
        """Count big scans on ``workers`` (processes reading the segment files); their
        lifetime stays the caller's. ``None``: count in this process."""
        self._workers = workers

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
        ``parts``: on the worker processes when the scan is big enough, else through one
        read-ahead pipeline here. A predicate needs records: those are counted by scanning."""
        stats = stats if stats is not None else ScanStats()
        partitions = [self.partition(topic, number) for topic, number in parts]
        if predicate is not None:
            return [
                sum(1 for _ in p.scan(query, predicate=predicate, stats=stats, watch=watch))
                for p in partitions
            ]
        if self._workers is not None:
            counts = self._workers.count_partitions(partitions, query, stats=stats, watch=watch)
            if counts is not None:
                return counts
        return count_partitions(partitions, query, stats=stats, watch=watch)

    def flush(self) -> None:
        """Wait until everything submitted so far is durable."""
        self.run_in_committer(lambda: None)

    def backend_status(self) -> dict[str, object]:
        """What ``/v1/status`` shows of the backend."""
        return {"backend": "embedded", "data_dir": str(self.data_dir)}

    def run_in_committer(self, fn: Callable[[], object]) -> object:
        """Run ``fn`` on the committer thread, after everything queued before it is durable."""
        if self._closed:
            raise StoreClosed("the store is closed")
        task = _Task(fn)
        self._queue.put(task)
        return task.future.result()

    def _run(self) -> None:
        last_sync = time.monotonic()
        while True:
            item = self._queue.get()
            if item is None:
                self._sync_all()
                return
            turn: list[_Work] = [item]
            size = 0 if isinstance(item, _Task) else len(item[1])
            touched = set() if isinstance(item, _Task) else {id(item[0])}
            deadline = last_sync + self.fsync_interval if self.fsync is Fsync.INTERVAL else 0.0
            stop = False
            while (
                size < _MAX_TURN_BYTES
                and len(touched) < self._max_turn_partitions
                and not isinstance(item, _Task)
            ):
                try:
                    timeout = deadline - time.monotonic()
                    nxt = (
                        self._queue.get(timeout=timeout)
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                turn.append(nxt)
                if isinstance(nxt, _Task):
                    break  # a task sees everything before it durable: end the turn here
                size += len(nxt[1])
                touched.add(id(nxt[0]))
            self._commit(turn)
            last_sync = time.monotonic()
            if stop:
                self._sync_all()
                return

    def _commit(self, turn: list[_Work]) -> None:
        touched: dict[int, Partition] = {}
        results: list[tuple[Future[AppendResult], AppendResult | BaseException]] = []
        task: _Task | None = None
        last = turn[-1]
        if isinstance(last, _Task):
            task = last
            turn.pop()
        for work in turn:
            assert not isinstance(work, _Task)
            part, data, fut = work
            if part.failure is not None and not self._retry(part):
                # An earlier append failed on this partition: storing a later batch now could
                # put a file's bytes out of order (and a resend of the failed one would then
                # look like a duplicate). Like Kafka taking a log dir offline, the partition
                # refuses writes until it is reopened (``_retry``: it tries now and then).
                results.append((fut, StoreError(f"{self._name(part)} is offline: {part.failure}")))
                continue
            try:
                results.append((fut, part.append(data)))
                touched[id(part)] = part
            except WharfError as exc:
                results.append((fut, exc))
            except OSError as exc:  # an I/O error: fail this append, keep serving others
                log.error("append to %s failed: %s", self._name(part), exc)
                self._offline(part, f"append failed: {exc.strerror or exc}", exc)
                results.append((fut, StoreError(f"{self._name(part)}: {exc.strerror or exc}")))
        try:
            for part in touched.values():
                if self.fsync is Fsync.NEVER:
                    part.publish()
                else:
                    part.sync()
        except OSError as exc:
            # After a failed fsync the page cache may have dropped the dirty pages: nothing
            # written since the last good sync can be trusted ("fsyncgate"). Fail every append
            # of the turn and take the partitions offline.
            log.error("fsync failed: %s", exc)
            for part in touched.values():
                self._offline(part, f"fsync failed: {exc.strerror or exc}", exc)
            results = [(f, StoreError(f"fsync failed: {exc.strerror or exc}")) for f, _ in results]
        for fut, res in results:
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)
        for part in touched.values():
            for listener in self._listeners:
                try:
                    listener(part.topic, part.number, part.durable_offset)
                except Exception:
                    log.exception("store listener failed")
        if task is not None:
            try:
                task.future.set_result(task.fn())
            except BaseException as exc:
                task.future.set_exception(exc)

    def _sync_all(self) -> None:
        for topic in list(self._topics.values()):
            for p in topic.partitions:
                if p.failure is not None:
                    continue  # what it holds past its acknowledged end is cut when reopened
                try:
                    p.sync()
                except OSError as exc:
                    log.error("sync of %s failed: %s", self._name(p), exc)
                    self._offline(p, f"fsync failed: {exc.strerror or exc}", exc)

    # -- offline partitions ---------------------------------------------------------------

    @staticmethod
    def _name(part: Partition) -> str:
        return f"partition {part.topic}/{part.number}"

    @staticmethod
    def _offline(part: Partition, why: str, exc: OSError) -> None:
        if part.failure is None:
            part.retries = 0
        part.failure = why
        part.wants_space = exc.errno in _NO_SPACE
        part.retry_at = time.monotonic() + _RETRY_FIRST_S

    def _retry(self, part: Partition) -> bool:
        """Reopen an offline partition if its backoff allows and, after running out of space,
        once the disk has room again (committer thread); whether it is back online."""
        if time.monotonic() < part.retry_at:
            return False
        if part.wants_space:
            try:
                disk = os.statvfs(part.dir)
            except OSError:
                return False
            if disk.f_bavail * disk.f_frsize < _SPACE_TO_RETRY:
                return False
        try:
            part.reopen()
        except OSError as exc:
            part.wants_space = part.wants_space or exc.errno in _NO_SPACE
            part.retries += 1
            delay = min(_RETRY_MAX_S, _RETRY_FIRST_S * 2**part.retries)
            part.retry_at = time.monotonic() + delay
            log.warning(
                "%s is still offline (%s); next try in %.0f s",
                self._name(part),
                exc.strerror or exc,
                delay,
            )
            return False
        log.warning("%s is back online", self._name(part))
        return True

    def health(self) -> list[str]:
        """What keeps the store from taking every write: one line per offline partition (empty
        when healthy). Offline partitions whose backoff has passed are retried first, so a
        health check also brings them back once the disk has room again."""

        def check() -> list[str]:
            problems = []
            for topic in list(self._topics.values()):
                for p in topic.partitions:
                    if p.failure is not None and not self._retry(p):
                        problems.append(f"{self._name(p)} is offline: {p.failure}")
            return problems

        problems = self.run_in_committer(check)
        assert isinstance(problems, list)
        return problems

    # -- maintenance ----------------------------------------------------------------------

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Apply every topic's retention; return the number of segments deleted.

        Runs through the committer so it never races an append on the same partition.
        """
        now = self.clock_ms() if now_ms is None else now_ms

        def apply() -> int:
            return sum(
                p.enforce_retention(now)
                for topic in list(self._topics.values())
                for p in topic.partitions
            )

        deleted = self.run_in_committer(apply)
        assert isinstance(deleted, int)
        return deleted

    # -- compaction ---------------------------------------------------------------------

    def _all_partitions(self) -> list[Partition]:
        return [p for t in list(self._topics.values()) for p in t.partitions]

    def _install(self, part: Partition, seg: Segment, replaced: bool) -> bool:
        """Swap a compacted segment in, on the committer thread, scan workers held off."""
        gate = self._workers.gate.exclusive() if self._workers is not None else nullcontext()
        with gate:
            done = self.run_in_committer(lambda: compaction.install(part, seg, replaced))
        return bool(done)

    def compact(self, topic: str) -> CompactResult:
        """Roll the topic's active segments and compact every sealed segment not compacted
        yet, now (``wharf topics compact``); returns when done."""
        started = time.monotonic()
        parts = self.partitions(topic)

        def roll() -> None:
            for p in parts:
                if p.failure is None:
                    p.roll()

        self.run_in_committer(roll)
        r = self.compactor.compact_now(parts)
        return CompactResult(
            topic=topic,
            segments=r.segments,
            batches=r.batches,
            bytes_before=r.bytes_before,
            bytes_after=r.bytes_after,
            filter_bytes=r.filter_bytes,
            line_bytes=r.line_bytes,
            seconds=round(time.monotonic() - started, 3),
            errors=r.errors,
        )

    def close(self) -> None:
        """Drain queued appends, sync, and close every file."""
        if self._closed:
            return
        self.compactor.stop()
        self._closed = True
        self._queue.put(None)
        self._committer.join()
        for topic in self._topics.values():
            for p in topic.partitions:
                p.close()
        self.files.close()

    def read(
        self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20
    ) -> list[wb.Batch]:
        """Durable batches from the one holding ``offset``."""
        return self.partition(topic, partition).read(offset, max_bytes)

    def offset_for_time(self, topic: str, partition: int, ts: int) -> int:
        """First offset at or after ``ts`` (ns) in one partition."""
        return self.partition(topic, partition).offset_for_time(ts)

    def iter_topics(self) -> Iterator[TopicInfo]:
        """``describe`` of every topic."""
        for name in self.topics():
            yield self.describe(name)
