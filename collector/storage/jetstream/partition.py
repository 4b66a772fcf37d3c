"""One topic partition as one JetStream stream: appends with exactly-once, reads by sequence.

Writing. Offsets are Wharf's, not JetStream's: a batch's base offset is the previous batch's
base plus its count, so the collector that appends must know the stream's last message. It
publishes with ``Nats-Expected-Last-Sequence`` set to the last sequence its index holds; the
stream leader refuses the message if anything was stored since (compare-and-set). On a refusal
the collector reads the messages it missed (another collector's appends), advances its index
and high-water marks, decides again (new, duplicate, trim) and retries. So two collectors can
append to one partition at once and offsets stay contiguous and every record is stored once:
the compare-and-set is the safety, nothing else is needed for it. One append per partition is
in flight per collector (pipelined compare-and-set publishes to one stream broke stored order).

A publish whose answer never came (the server died, an election) may or may not have been
stored. The retry finds out: if it was, the stream's last sequence moved, the compare-and-set
fails, the catch-up reads our own batch back and the marks call the batch a duplicate. So no
``Nats-Msg-Id`` is needed (its dedupe window costs server memory per id and catches only
identical resends); and ``Nats-Expected-Last-Msg-Id`` is not used (a rejected one left R3 streams
leaderless for a minute on 2.15.1).

A failed append fences its producer on this partition: a later batch of the same producer is
refused until the failed one (or an earlier one) comes again. Otherwise a later batch of the
same file could be stored first, and the resend of the failed one would then look like a
duplicate of data never stored (the embedded store takes the partition offline instead; here
failures are transient: a leader election).

Reading. The index (``index.PartitionIndex``) is fed by a headers-only ordered consumer that
follows the stream: every collector sees every append, its own and the others', in order, and
announces each to the commit listeners (live tail). Payloads are fetched by direct get, which
any replica answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

import msgspec
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from collector.filters.query import Predicate, Query
from collector.storage import scan as scanning
from collector.storage.dedupe import HighWaterMarks, Verdict, trim
from collector.storage.jetstream import meta as jmeta
from collector.storage.jetstream.filters import key_of
from collector.storage.jetstream.index import Entry, PartitionIndex
from collector.storage.jetstream.names import stream_name, subject
from collector.storage.partition import AppendResult
from collector.storage.scan import ScanHit, ScanStats, Watch
from wharf import batch as wb
from wharf.api import PartitionInfo
from wharf.errors import (
    BatchTooLarge,
    CorruptBatch,
    InvalidArgument,
    OffsetOutOfRange,
    StoreError,
)
from wharf.topics import TopicConfig

if TYPE_CHECKING:  # the store owns its partitions and hands itself in
    from collector.storage.jetstream.store import JetStreamStore

log = logging.getLogger(__name__)

# An append retries through elections (4.6-8.5 s measured after a kill) for this long before
# it fails with a retriable error and the shipper resends later, here or to another collector.
APPEND_DEADLINE_S: Final = 20.0
# A read (direct get) is retried for this long: any replica answers, but a client that was on
# a killed server needs to reconnect first.
READ_DEADLINE_S: Final = 15.0
# Opening waits for the headers-only consumer; this long without progress, it reads directly.
FEED_STALL_S: Final = 2.0
# What catching up reads per direct-get request.
CATCH_UP_BATCH: Final = 64
WRONG_LAST_SEQUENCE: Final = 10071
# Server answers that mean "not now": no leader, no quorum, the stream moving. (js.publish
# turns "no responders", the answer while a stream elects its leader, into
# NoStreamResponseError.)
_TRANSIENT = (
    NatsTimeout,
    asyncio.TimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ConnectionClosedError,
)


class _Snapshot(msgspec.Struct, array_like=True):
    """High-water marks as of a sequence, kept in the marks bucket."""

    seq: int
    next_offset: int
    marks: bytes


class JsBatchRef:
    """One stored batch (``interface.BatchSpan``), read by direct get."""

    __slots__ = ("_entry", "_part")

    def __init__(self, part: JsPartition, entry: Entry) -> None:
        self._part = part
        self._entry = entry

    @property
    def base_offset(self) -> int:
        return self._entry.base_offset

    @property
    def count(self) -> int:
        return self._entry.count

    @property
    def min_ts(self) -> int:
        return self._entry.min_ts

    @property
    def max_ts(self) -> int:
        return self._entry.max_ts

    @property
    def stored_bytes(self) -> int:
        return self._entry.stored_bytes

    @property
    def hosts(self) -> tuple[str, ...] | None:
        return self._entry.hosts

    def load(self) -> wb.Batch:
        b = self._part.fetch(self._entry)
        store = self._part.store
        if store.use_filters:
            store.filters.offer(key_of(self._part.stream, self._entry), b)
        return b

    def may_contain(self, tokens: Sequence[bytes]) -> bool:
        """``False`` when the filter this collector built of the batch, the last time it read
        it, rules a token out (``collector.storage.jetstream.filters``)."""
        store = self._part.store
        if not store.use_filters:
            return True
        return store.filters.may_contain(key_of(self._part.stream, self._entry), tokens)

    def __repr__(self) -> str:
        return f"{self._part.stream}#{self._entry.seq}@{self._entry.base_offset}"


def stream_config(
    name: str, topic: str, number: int, config: TopicConfig, replicas: int, max_msg: int
) -> StreamConfig:
    """The stream of one partition: its retention is the topic's, in whole messages."""
    max_age = config.retention_ms / 1000 if config.retention_ms >= 0 else 0
    return StreamConfig(
        name=stream_name(name, topic, number),
        subjects=[subject(name, topic, number)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        discard=DiscardPolicy.OLD,
        max_age=max_age,
        max_bytes=config.retention_bytes if config.retention_bytes >= 0 else -1,
        max_msg_size=max_msg,
        allow_direct=True,
        # No Nats-Msg-Id is sent, so the window holds nothing; it may not exceed max_age.
        duplicate_window=min(60, max_age) if max_age else 60,
        description=f"wharf topic {topic!r} partition {number}",
    )


class JsPartition:
    """A partition of ``topic`` stored in its stream (``interface.PartitionReader``)."""

    def __init__(self, store: JetStreamStore, topic: str, number: int, config: TopicConfig) -> None:
        self.store = store
        self.client = store.client
        self.topic = topic
        self.number = number
        self.config = config
        self.stream = stream_name(store.name, topic, number)
        self.subject = subject(store.name, topic, number)
        self.index = PartitionIndex()
        self.marks = HighWaterMarks()
        self.fence: dict[bytes, int] = {}  # producer -> producer_seq of its failed batch
        self._writer = asyncio.Lock()  # one append in flight per partition (loop objects:
        self._feed = asyncio.Lock()  # created on the loop by ``open``'s caller, see store)
        self._sub: object | None = None
        self._advanced = asyncio.Event()  # set whenever the index moves forward
        self._snapshot_seq = 0
        self.closed = False
        self.conflicts = 0  # appends that lost a compare-and-set (another writer was first)

    def __repr__(self) -> str:
        return f"<JsPartition {self.topic}/{self.number} ({self.stream})>"

    # -- opening (on the loop) ------------------------------------------------------------

    async def open(self) -> None:
        """Create or find the stream, load the marks snapshot, index what the stream holds,
        then follow it."""
        js = self.client.js
        cfg = stream_config(
            self.store.name,
            self.topic,
            self.number,
            self.config,
            self.store.replicas,
            self.store.max_msg_bytes,
        )
        try:
            info = await js.stream_info(self.stream)
        except NotFoundError:
            info = await js.add_stream(cfg)
        state = info.state
        first, last = state.first_seq, state.last_seq
        snap = await self._load_snapshot()
        if snap is not None:
            marks = HighWaterMarks.decode(snap.marks)
            if marks is not None:
                self.marks = marks
            self._snapshot_seq = snap.seq
        if first > last:  # empty (or emptied by retention): offsets continue from the snapshot
            if snap is not None and snap.seq >= last:
                self.index.skip_to(last, snap.next_offset)
            elif last:
                # Every message since the snapshot expired while no collector watched: their
                # offsets are unknown. Never reuse an offset: leave room for the most records
                # they could have held (a gap in offsets, as retention leaves).
                base = snap.next_offset if snap is not None else 0
                lost = last - (snap.seq if snap is not None else 0)
                self.index.skip_to(last, base + lost * wb.MAX_RECORDS)
                log.error(
                    "%s: %d messages expired since the last marks snapshot; offsets continue "
                    "after a gap and resends of their records cannot be recognized",
                    self.stream,
                    lost,
                )
        else:
            self.index.skip_to(first - 1)
        self._sub = await js.subscribe(
            self.subject,
            stream=self.stream,
            cb=self._on_message,
            ordered_consumer=True,
            headers_only=True,
            idle_heartbeat=2.0,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=self.index.last_seq + 1),
        )
        # Readers see the partition only once the index holds what was stored at open.
        await self._follow_to(last, deadline=time.monotonic() + 300)

    async def _follow_to(self, target: int, deadline: float) -> None:
        """Wait until the index holds sequence ``target``, fed by the headers-only consumer
        (opening a partition reads headers, not the stored batches); read by direct get, which
        carries the payloads too, only when the consumer makes no progress for a while."""
        seen = self.index.last_seq
        while self.index.last_seq < target:
            self._advanced.clear()
            if self.index.last_seq >= target:
                break
            try:
                async with asyncio.timeout(FEED_STALL_S):
                    await self._advanced.wait()
            except TimeoutError:
                if self.index.last_seq == seen:
                    log.info("%s: the consumer stalled at %d; reading directly", self.stream, seen)
                    break
            seen = self.index.last_seq
        await self._catch_up_to(target, deadline)  # nothing left to read when it followed

    async def _load_snapshot(self) -> _Snapshot | None:
        try:
            entry = await self.store.marks_kv.get(self.stream)
        except Exception as exc:  # KeyNotFoundError, KeyDeletedError
            if type(exc).__name__ in ("KeyNotFoundError", "KeyDeletedError"):
                return None
            raise
        if entry.value is None:
            return None
        try:
            return msgspec.msgpack.decode(entry.value, type=_Snapshot)
        except msgspec.DecodeError:
            log.error("%s: damaged marks snapshot ignored", self.stream)
            return None

    async def close(self) -> None:
        self.closed = True
        sub = self._sub
        self._sub = None
        if sub is not None:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception as exc:
                log.debug("%s: unsubscribe: %s", self.stream, exc)

    # -- the index feed (on the loop) -----------------------------------------------------

    async def _on_message(self, msg: object) -> None:
        seq = msg.metadata.sequence.stream  # type: ignore[attr-defined]
        headers = msg.headers or {}  # type: ignore[attr-defined]
        async with self._feed:
            if seq > self.index.last_seq + 1:
                # A gap in what the consumer delivered: retention deleted those messages, or
                # the consumer was recreated. Read what is still there before going on.
                try:
                    await self._fill_locked(seq - 1)
                except _TRANSIENT as exc:
                    log.warning("%s: cannot read messages before %d: %s", self.stream, seq, exc)
            self._index_one(seq, headers.get(jmeta.HEADER))

    def _index_one(self, seq: int, header: str | None) -> None:
        """Index the message at ``seq`` (called in sequence order, under ``_feed``)."""
        if seq <= self.index.last_seq:
            return  # seen already (our own append, or a catch-up read it first)
        if header is None:
            log.error(
                "%s: message %d has no %s header: not ours, skipped", self.stream, seq, jmeta.HEADER
            )
            self.index.skip_to(seq)
            self._advanced.set()
            return
        try:
            m = jmeta.decode(header, f"{self.stream}#{seq}")
        except CorruptBatch as exc:
            log.error("%s", exc)
            self.index.skip_to(seq)
            self._advanced.set()
            return
        self.index.add(seq, m)
        self.marks.advance(m.producer_id, m.spans)
        self._advanced.set()
        self.store.announce(self.topic, self.number, self.index.next_offset)

    async def _fill_locked(self, upto: int | None) -> bool:
        """Index the messages after the index's last, up to sequence ``upto`` (``None``: the
        stream's end), by direct get (under ``_feed``). False when a replica answered with
        less than it should have (behind): try again."""
        while upto is None or self.index.last_seq < upto:
            got, pending = await self._direct_batch(self.index.last_seq + 1, CATCH_UP_BATCH)
            for seq, headers, _ in got:
                self._index_one(seq, headers.get(jmeta.HEADER))
            if not got:
                if upto is None:
                    return True
                info = await self.client.js.stream_info(self.stream)
                if info.state.first_seq > upto:  # all of them deleted by retention
                    self.index.skip_to(upto)
                    return True
                return False
            if pending == 0 and upto is None:
                return True
        return True

    async def _catch_up_to(self, target: int | None, deadline: float) -> None:
        """Index every message up to ``target`` (``None``: the stream's end now)."""
        while True:
            async with self._feed:
                try:
                    if await self._fill_locked(target):
                        return
                    problem = "a replica answered with fewer messages than were stored"
                except _TRANSIENT as exc:
                    problem = str(exc) or type(exc).__name__
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{self.stream}: could not read the stream up to sequence "
                    f"{target if target is not None else 'its end'}: {problem}"
                )
            await asyncio.sleep(0.1)

    async def _direct_batch(
        self, seq: int, batch: int, *, max_bytes: int = 8 << 20
    ) -> tuple[list[tuple[int, dict[str, str], bytes]], int]:
        """Up to ``batch`` messages from sequence ``seq`` on (direct get: any replica answers)
        and how many more the stream held after them."""
        nc = self.client.nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, max_msgs=batch + 1)
        out: list[tuple[int, dict[str, str], bytes]] = []
        try:
            req = {"seq": seq, "batch": batch, "max_bytes": max_bytes}
            await nc.publish(
                f"$JS.API.DIRECT.GET.{self.stream}", json.dumps(req).encode(), reply=inbox
            )
            while True:
                msg = await sub.next_msg(timeout=2.0)
                hdrs = msg.headers or {}
                status = hdrs.get("Status")
                if status == "404":  # nothing at or after ``seq``
                    return out, 0
                if status == "204":  # end of this batch
                    return out, int(hdrs.get("Nats-Num-Pending", "0"))
                if status is not None:
                    raise StoreError(
                        f"{self.stream}: direct get answered {status} {hdrs.get('Description', '')}"
                    )
                out.append((int(hdrs["Nats-Sequence"]), hdrs, msg.data))
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe %s: %s", inbox, exc)

    # -- appending (on the loop) ----------------------------------------------------------

    async def append(self, data: bytes) -> AppendResult:
        """Store one checked batch once; the result once the stream acknowledged it."""
        batch = wb.Batch(data)
        producer = batch.header.producer_id
        pseq = batch.header.producer_seq
        async with self._writer:
            fenced = self.fence.get(producer)
            if fenced is not None and batch.spans and pseq > fenced:
                raise StoreError(
                    f"{self.topic}/{self.number}: an earlier batch of this producer "
                    f"(#{fenced}) failed; resend from it"
                )
            try:
                result = await self._append(data, batch)
            except StoreError:
                if batch.spans:
                    self.fence[producer] = min(pseq, fenced if fenced is not None else pseq)
                raise
            self.fence.pop(producer, None)
            return result

    async def _append(self, data: bytes, batch: wb.Batch) -> AppendResult:
        js = self.client.js
        producer = batch.header.producer_id
        deadline = time.monotonic() + APPEND_DEADLINE_S
        delay = 0.05
        while True:
            async with self._feed:
                verdict = self.marks.verdict(producer, batch.spans)
                if verdict is Verdict.DUPLICATE:
                    return AppendResult(self.number, -1, 0, duplicate=True)
                body, b = data, batch
                if verdict is Verdict.PARTIAL:
                    trimmed = trim(batch, self.marks)
                    if trimmed is None:
                        self.marks.advance(producer, batch.spans)
                        return AppendResult(self.number, -1, 0, duplicate=True)
                    body, b = trimmed, wb.Batch(trimmed)
                expected = self.index.last_seq
                stored = wb.with_offset(body, self.index.next_offset, self.store.clock_ms())
                m = jmeta.describe(stored, b)
                header = jmeta.encode(m)
            if len(stored) + len(header) + 512 > self.store.max_msg_bytes:
                raise BatchTooLarge(
                    f"batch of {len(stored)} bytes exceeds the cluster's message size "
                    f"({self.store.max_msg_bytes} bytes, the NATS servers' max_payload): send "
                    "smaller batches (shipper batch_bytes)"
                )
            try:
                ack = await js.publish(
                    self.subject,
                    stored,
                    timeout=2.0,
                    stream=self.stream,
                    headers={"Nats-Expected-Last-Sequence": str(expected), jmeta.HEADER: header},
                )
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    self.conflicts += 1
                    # Someone stored after ``expected`` (another collector, or our own publish
                    # whose answer was lost): read it, then decide again.
                    await self._catch_up_to(None, deadline)
                    continue
                if (exc.code or 0) >= 500:
                    await self._pause(deadline, delay, exc)
                    delay = min(delay * 2, 1.0)
                    continue
                raise StoreError(
                    f"{self.stream}: append refused: {exc.description or exc}"
                ) from exc
            except _TRANSIENT as exc:
                await self._pause(deadline, delay, exc)
                delay = min(delay * 2, 1.0)
                continue
            async with self._feed:
                if ack.seq > self.index.last_seq:
                    if ack.seq != self.index.last_seq + 1:
                        # Cannot happen under compare-and-set; refuse to guess offsets.
                        raise StoreError(
                            f"{self.stream}: stored at sequence {ack.seq}, expected "
                            f"{self.index.last_seq + 1}"
                        )
                    self.index.add(ack.seq, m)
                    self.marks.advance(producer, m.spans)
                    self.store.announce(self.topic, self.number, self.index.next_offset)
            return AppendResult(self.number, m.base_offset, m.count)

    async def _pause(self, deadline: float, delay: float, exc: BaseException) -> None:
        if time.monotonic() + delay > deadline:
            raise StoreError(
                f"{self.stream}: the cluster did not store the batch within "
                f"{APPEND_DEADLINE_S:g} s (no stream leader?): {exc or type(exc).__name__}"
            ) from exc
        log.info("%s: append retried: %s", self.stream, exc or type(exc).__name__)
        await asyncio.sleep(delay)

    # -- maintenance (on the loop) --------------------------------------------------------

    async def apply_retention(self) -> int:
        """Forget index entries of messages the stream deleted (its own limits); how many."""
        info = await self.client.js.stream_info(self.stream)
        return self.index.drop_below(info.state.first_seq)

    async def snapshot(self) -> None:
        """Save the high-water marks (they outlive the messages retention deletes)."""
        async with self._feed:
            seq = self.index.last_seq
            if seq == self._snapshot_seq:
                return
            snap = _Snapshot(seq, self.index.next_offset, self.marks.encode())
        await self.store.marks_kv.put(self.stream, msgspec.msgpack.encode(snap))
        self._snapshot_seq = seq

    # -- reading (any thread but the loop) ------------------------------------------------

    @property
    def start_offset(self) -> int:
        return self.index.start_offset

    @property
    def durable_offset(self) -> int:
        return self.index.next_offset

    def _check_offset(self, offset: int) -> None:
        if offset < 0:
            raise InvalidArgument(f"offset {offset} is negative")
        start, end = self.start_offset, self.durable_offset
        if offset < start:
            raise OffsetOutOfRange(
                f"offset {offset} of partition {self.number} was deleted by retention; "
                f"the earliest is {start}"
            )
        if offset > end:
            raise OffsetOutOfRange(
                f"offset {offset} is past the end of partition {self.number} (end is {end})"
            )

    def refs(
        self,
        from_offset: int | None = None,
        *,
        min_ts: int | None = None,
        max_ts: int | None = None,
    ) -> Iterator[JsBatchRef]:
        if from_offset is not None:
            self._check_offset(from_offset)
        for entry in self.index.view().select(from_offset, min_ts, max_ts):
            yield JsBatchRef(self, entry)

    def fetch(self, entry: Entry) -> wb.Batch:
        """The stored batch of ``entry`` (direct get, any replica)."""
        data = self.client.run(self._fetch(entry.seq), READ_DEADLINE_S + 5)
        if data is None:
            raise CorruptBatch("deleted by retention during the read", f"{self.stream}#{entry.seq}")
        b = wb.Batch(data, where=f"{self.stream}#{entry.seq}")
        if b.header.base_offset != entry.base_offset:
            raise CorruptBatch(
                f"holds offset {b.header.base_offset}, the index says {entry.base_offset}",
                f"{self.stream}#{entry.seq}",
            )
        return b

    async def _fetch(self, seq: int) -> bytes | None:
        deadline = time.monotonic() + READ_DEADLINE_S
        while True:
            try:
                msg = await self.client.js.get_msg(self.stream, seq=seq, direct=True)
                return bytes(msg.data or b"")
            except NotFoundError:
                # Gone (retention) or not yet on the replica that answered.
                if seq < self.index.first_seq() or time.monotonic() > deadline:
                    return None
            except _TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.stream}: cannot read message {seq}: {exc}") from exc
            await asyncio.sleep(0.05)

    def read(self, offset: int, max_bytes: int = 1 << 20) -> list[wb.Batch]:
        out: list[wb.Batch] = []
        size = 0
        for ref in self.refs(offset):
            b = ref.load()
            out.append(b)
            size += b.header.size
            if size >= max_bytes:
                break
        return out

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
        return scanning.scan(
            self,
            query,
            predicate=predicate,
            from_offset=from_offset,
            to_offset=to_offset,
            stats=stats,
            watch=watch,
        )

    def offset_for_time(self, ts: int) -> int:
        return scanning.offset_for_time(self, ts, self.durable_offset)

    def line_bytes(self) -> int:
        return self.index.view().line_bytes()

    def info(self) -> PartitionInfo:
        view = self.index.view()
        lo, hi = view.time_range()
        return PartitionInfo(
            partition=self.number,
            start_offset=self.start_offset,
            end_offset=self.durable_offset,
            bytes=view.stored_bytes(),
            segments=1,  # one stream
            min_ts=lo,
            max_ts=hi,
        )
