"""The cluster backend: Wharf's topics stored in NATS JetStream (``interface.Storage``).

What lives where:

- topic settings: the KV bucket ``<name>-topics`` (key: topic name). Every collector watches
  it, so a topic created through one collector is known to all;
- one stream per topic partition (``partition.JsPartition``), replicated ``replicas`` times,
  its messages Wharf batches byte for byte;
- high-water mark snapshots: the KV bucket ``<name>-marks`` (they outlive the messages
  retention deletes, so a resend of old data is still recognized);
- consumer groups: the KV bucket ``<name>-groups`` (``groups.KvGroups``).

A collector keeps nothing of its own but an index cache per partition it has opened (rebuilt
from the stream's headers when it opens one). Partitions open on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any, Final, TypeVar

import msgspec
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from collector.filters.query import Predicate, Query
from collector.storage.jetstream.client import NatsClient
from collector.storage.jetstream.filters import FilterCache
from collector.storage.jetstream.groups import KvGroups
from collector.storage.jetstream.names import (
    groups_bucket,
    marks_bucket,
    stream_name,
    topics_bucket,
    validate_name,
)
from collector.storage.jetstream.partition import JsPartition
from collector.storage.partition import AppendResult, wall_clock_ms
from collector.storage.scan import ScanStats, Watch, count_partitions
from wharf.api import CompactResult, TopicInfo
from wharf.errors import (
    InvalidArgument,
    StoreClosed,
    StoreError,
    TopicExists,
    UnknownTopic,
)
from wharf.topics import TopicConfig, validate_topic

log = logging.getLogger(__name__)

# Room left in a message for its headers (the Wharf-Meta header and NATS's own).
HEADER_ROOM: Final = 64 << 10
# How long a synchronous call waits for the cluster (opening a partition reads its headers).
T = TypeVar("T")

CALL_TIMEOUT_S: Final = 30.0
# Start-up waits this long for the cluster (an election after a server died takes up to ~10 s),
# asking again every ATTEMPT_S.
START_DEADLINE_S: Final = 60.0
ATTEMPT_S: Final = 5.0
OPEN_TIMEOUT_S: Final = 330.0

CommitListener = Callable[[str, int, int], None]


class JetStreamStore:
    """``JetStreamStore(["nats://h:4222"], replicas=3)``; close with ``close()``."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str = "wharf",
        replicas: int = 3,
        default_config: TopicConfig | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        max_batch_bytes: int | None = None,
        use_filters: bool = True,
    ) -> None:
        self.name = validate_name(name)
        # Token filters of the batches scans read, for the next scans (``filters``).
        self.use_filters = use_filters
        self.filters = FilterCache()
        if not 1 <= replicas <= 5:
            raise InvalidArgument(f"replicas must be 1..5 (JetStream's limit), got {replicas}")
        self.replicas = replicas
        self.default_config = default_config or TopicConfig()
        self.clock_ms = clock_ms
        self._listeners: list[CommitListener] = []
        self._configs: dict[str, TopicConfig] = {}
        self._parts: dict[tuple[str, int], JsPartition] = {}
        self._opening: dict[tuple[str, int], Future[JsPartition]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.client = NatsClient(urls, name=f"wharf-collector-{name}")
        try:
            # The cap on one message: the servers' max_payload (headers count toward it).
            server_max = int(self.client.nc.max_payload)
            cap = server_max if max_batch_bytes is None else min(server_max, max_batch_bytes)
            self.max_msg_bytes = cap
            self.client.run(self._setup(), START_DEADLINE_S + 5)
        except BaseException:
            self.client.close()
            raise

    async def _setup(self) -> None:
        """Find or create the buckets and read the topics, each step tried again with a short
        timeout until ``START_DEADLINE_S``: a collector starting while a bucket's stream elects
        a leader (seconds after a server died) waits it out. nats-py does not fail a request
        when its server dies, so one long wait would hang on a dead one."""
        deadline = time.monotonic() + START_DEADLINE_S
        self.topics_kv = await _retrying(
            lambda: self._bucket(topics_bucket(self.name), history=1), deadline, "topics bucket"
        )
        self.marks_kv = await _retrying(
            lambda: self._bucket(marks_bucket(self.name), history=1), deadline, "marks bucket"
        )
        self.groups_kv = await _retrying(
            lambda: self._bucket(groups_bucket(self.name), history=1), deadline, "groups bucket"
        )
        while True:
            self._ready = asyncio.Event()
            self._watcher = asyncio.get_running_loop().create_task(self._watch_topics())
            try:
                async with asyncio.timeout(max(0.1, min(ATTEMPT_S, deadline - time.monotonic()))):
                    await self._ready.wait()
                return
            except TimeoutError:
                self._watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._watcher
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"the NATS cluster did not list the topics within {START_DEADLINE_S:g} s"
                    ) from None
                log.warning("reading the topics bucket: no answer yet; asking again")

    async def _bucket(self, bucket: str, history: int) -> KeyValue:
        js = self.client.js
        try:
            return await js.key_value(bucket)
        except BucketNotFoundError:
            pass
        cfg = KeyValueConfig(
            bucket=bucket, history=history, storage=StorageType.FILE, replicas=self.replicas
        )
        return await js.create_key_value(cfg)

    async def _watch_topics(self) -> None:
        """Follow the topics bucket: topics created or deleted through any collector."""
        while not self._closed:
            try:
                watcher = await self.topics_kv.watchall()
                async for entry in watcher:
                    if entry is None:  # the initial values are all in
                        self._ready.set()
                        continue
                    self._topic_changed(entry.key, entry.operation, entry.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching the topics bucket: %s; watching again", exc)
                await asyncio.sleep(1)

    def _topic_changed(self, key: str, operation: str | None, value: bytes | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            with self._lock:
                self._configs.pop(key, None)
                doomed = [p for (t, _), p in self._parts.items() if t == key]
                for p in doomed:
                    del self._parts[(p.topic, p.number)]
            for p in doomed:
                asyncio.get_running_loop().create_task(p.close())
            return
        try:
            config = msgspec.json.decode(value, type=TopicConfig)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("topic %r: damaged settings in the topics bucket: %s", key, exc)
            return
        with self._lock:
            self._configs[key] = config

    # -- topics ---------------------------------------------------------------------------

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._configs)

    def _config(self, topic: str) -> TopicConfig:
        validate_topic(topic)
        with self._lock:
            config = self._configs.get(topic)
        if config is None:
            raise UnknownTopic(f"no topic {topic!r}")
        return config

    def describe(self, topic: str) -> TopicInfo:
        config = self._config(topic)
        return TopicInfo(topic, config, [p.info() for p in self.partitions(topic)])

    def create_topic(self, name: str, config: TopicConfig | None = None) -> TopicInfo:
        validate_topic(name)
        config = config or self.default_config
        self._check_open()
        self.client.run(self._create_topic(name, config), CALL_TIMEOUT_S)
        return self.describe(name)

    async def _create_topic(self, name: str, config: TopicConfig) -> None:
        try:
            await self.topics_kv.create(name, msgspec.json.encode(config))
        except KeyWrongLastSequenceError:
            raise TopicExists(f"topic {name!r} exists already") from None
        # Known here at once (the watcher will say so too, a moment later).
        with self._lock:
            self._configs[name] = config

    def ensure_topic(self, name: str) -> TopicConfig:
        try:
            return self._config(name)
        except UnknownTopic:
            try:
                return self.create_topic(name).config
            except TopicExists:
                return self._wait_config(name)

    def _wait_config(self, name: str) -> TopicConfig:
        async def read() -> TopicConfig:
            entry = await self.topics_kv.get(name)
            assert entry.value is not None
            return msgspec.json.decode(entry.value, type=TopicConfig)

        config = self.client.run(read(), CALL_TIMEOUT_S)
        with self._lock:
            self._configs.setdefault(name, config)
        return config

    def compact(self, topic: str) -> CompactResult:
        """Not in cluster mode: JetStream keeps the data in its own file store (its own
        compression and retention); the embedded store's compaction rewrites its segments."""
        self._config(topic)  # an unknown topic is said as such
        raise InvalidArgument(
            f"cannot compact topic {topic!r}: compaction rewrites the embedded store's segment "
            "files, and in cluster mode JetStream keeps the data in its own file store"
        )

    def delete_topic(self, name: str) -> None:
        config = self._config(name)
        self._check_open()
        self.client.run(self._delete_topic(name, config), CALL_TIMEOUT_S)
        for n in range(config.partitions):
            self.filters.forget(stream_name(self.name, name, n))

    async def _delete_topic(self, name: str, config: TopicConfig) -> None:
        await self.topics_kv.delete(name)
        self._topic_changed(name, "DEL", None)
        for n in range(config.partitions):
            stream = stream_name(self.name, name, n)
            with contextlib.suppress(NotFoundError):
                await self.client.js.delete_stream(stream)
            await self.marks_kv.purge(stream)

    # -- partitions -----------------------------------------------------------------------

    def partitions(self, topic: str) -> list[JsPartition]:
        config = self._config(topic)
        return [self.partition(topic, n) for n in range(config.partitions)]

    def partition(self, topic: str, partition: int) -> JsPartition:
        config = self._config(topic)
        if not 0 <= partition < config.partitions:
            raise InvalidArgument(
                f"topic {topic!r} has partitions 0..{config.partitions - 1}, not {partition}"
            )
        with self._lock:
            part = self._parts.get((topic, partition))
        if part is not None:
            return part
        if self.client.on_loop:
            raise RuntimeError("JetStreamStore.partition called on the NATS loop; use _open")
        return self.client.run(self._open(topic, partition, config), OPEN_TIMEOUT_S)

    async def _open(self, topic: str, number: int, config: TopicConfig) -> JsPartition:
        """The partition, opened once however many callers ask at the same time (on the loop)."""
        key = (topic, number)
        with self._lock:
            part = self._parts.get(key)
            pending = self._opening.get(key)
            if part is None and pending is None:
                pending = Future()
                self._opening[key] = pending
                mine = True
            else:
                mine = False
        if part is not None:
            return part
        assert pending is not None
        if not mine:
            return await asyncio.wrap_future(pending)
        fresh = JsPartition(self, topic, number, config)
        try:
            await fresh.open()
        except BaseException as exc:
            with self._lock:
                del self._opening[key]
            pending.set_exception(exc)
            await fresh.close()
            raise
        with self._lock:
            self._parts[key] = fresh
            del self._opening[key]
        pending.set_result(fresh)
        return fresh

    # -- writing --------------------------------------------------------------------------

    def submit(self, topic: str, partition: int, data: bytes) -> Future[AppendResult]:
        self._check_open()
        config = self._config(topic)
        if not 0 <= partition < config.partitions:
            raise InvalidArgument(
                f"topic {topic!r} has partitions 0..{config.partitions - 1}, not {partition}"
            )
        return self.client.submit(self._append(topic, partition, config, data))

    async def _append(
        self, topic: str, number: int, config: TopicConfig, data: bytes
    ) -> AppendResult:
        part = await self._open(topic, number, config)
        return await part.append(data)

    def append(self, topic: str, partition: int, data: bytes) -> AppendResult:
        """Append one batch and wait until the cluster stored it."""
        return self.submit(topic, partition, data).result(CALL_TIMEOUT_S + 60)

    def add_listener(self, callback: CommitListener) -> None:
        self._listeners = [*self._listeners, callback]

    def remove_listener(self, callback: CommitListener) -> None:
        self._listeners = [cb for cb in self._listeners if cb != callback]

    def announce(self, topic: str, partition: int, end: int) -> None:
        """Tell the listeners that ``end`` is the partition's new durable end (on the loop)."""
        for listener in self._listeners:
            try:
                listener(topic, partition, end)
            except Exception:
                log.exception("store listener failed")

    # -- reading --------------------------------------------------------------------------

    def count(
        self,
        parts: Sequence[tuple[str, int]],
        query: Query,
        *,
        predicate: Predicate | None = None,
        stats: ScanStats | None = None,
        watch: Watch | None = None,
    ) -> list[int]:
        stats = stats if stats is not None else ScanStats()
        partitions = [self.partition(topic, number) for topic, number in parts]
        if predicate is not None:
            return [
                sum(1 for _ in p.scan(query, predicate=predicate, stats=stats, watch=watch))
                for p in partitions
            ]
        return count_partitions(partitions, query, stats=stats, watch=watch)

    # -- maintenance ----------------------------------------------------------------------

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """The streams apply retention themselves (``max_age``, ``max_bytes``): forget what
        they deleted and snapshot the high-water marks; the number of batches forgotten.
        ``now_ms`` is ignored: the servers' clocks decide."""
        del now_ms
        self._check_open()
        return self.client.run(self._retention(), CALL_TIMEOUT_S * 4)

    async def _retention(self) -> int:
        with self._lock:
            parts = list(self._parts.values())
        dropped = 0
        for p in parts:
            try:
                dropped += await p.apply_retention()
                await p.snapshot()
            except Exception as exc:
                log.warning("retention of %s: %s", p.stream, exc)
        return dropped

    def flush(self) -> None:
        """Return once the cluster answers JetStream requests (the health check)."""
        self._check_open()

        async def ping() -> None:
            await self.client.nc.flush(timeout=2)
            await self.client.js.account_info()

        try:
            self.client.run(ping(), 5)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"the NATS cluster does not answer: {exc or type(exc).__name__}"
            ) from exc

    def group_offsets(self) -> KvGroups:
        """Consumer groups, in this cluster's groups bucket."""
        return KvGroups(self.client, self.groups_kv)

    def health(self) -> list[str]:
        """Nothing partition by partition: every append waits out an election or fails on its
        own, and ``flush`` says whether the cluster answers at all."""
        return []

    def backend_status(self) -> dict[str, object]:
        """Servers, and per opened partition its stream's leader, replicas and index lag."""
        self._check_open()
        return self.client.run(self._status(), CALL_TIMEOUT_S)

    async def _status(self) -> dict[str, object]:
        nc = self.client.nc
        with self._lock:
            parts = sorted(self._parts.values(), key=lambda p: (p.topic, p.number))
        streams: list[dict[str, Any]] = []
        for p in parts:
            row: dict[str, Any] = {"topic": p.topic, "partition": p.number, "stream": p.stream}
            try:
                info = await self.client.js.stream_info(p.stream)
            except Exception as exc:
                row["error"] = str(exc) or type(exc).__name__
                streams.append(row)
                continue
            cluster = info.cluster
            row["leader"] = cluster.leader if cluster else None
            row["replicas"] = [
                {"name": r.name, "current": r.current, "lag": r.lag}
                for r in ((cluster.replicas or []) if cluster else [])
            ]
            row["messages"] = info.state.messages
            row["index_lag"] = max(0, info.state.last_seq - p.index.last_seq)
            row["conflicts"] = p.conflicts
            streams.append(row)
        return {
            "backend": "jetstream",
            "name": self.name,
            "replicas": self.replicas,
            "connected": nc.connected_url.netloc if nc.connected_url else None,
            "servers": [f"{u.hostname}:{u.port}" for u in nc.servers],
            "streams": streams,
            "token_filters": {
                "batches": len(self.filters),
                "bytes": self.filters.bytes,
                "max_bytes": self.filters.max_bytes,
                "dropped": self.filters.dropped,
            },
        }

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def shut() -> None:
            self._watcher.cancel()
            with self._lock:
                parts = list(self._parts.values())
            for p in parts:
                try:
                    await p.snapshot()
                except Exception as exc:
                    log.warning("snapshot of %s at close: %s", p.stream, exc)
                await p.close()

        try:
            self.client.run(shut(), CALL_TIMEOUT_S)
        except Exception as exc:
            log.warning("closing the cluster store: %s", exc)
        self.client.close()
        self.filters.close()

    def __enter__(self) -> JetStreamStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def _retrying(make: Callable[[], Awaitable[T]], deadline: float, what: str) -> T:
    """``await make()``, each attempt bounded by ``ATTEMPT_S``, again until ``deadline``."""
    while True:
        try:
            async with asyncio.timeout(max(0.1, min(ATTEMPT_S, deadline - time.monotonic()))):
                return await make()
        except Exception as exc:  # nats-py raises many kinds while a stream has no leader
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"the NATS cluster did not answer for the {what} within "
                    f"{START_DEADLINE_S:g} s: {exc or type(exc).__name__}"
                ) from exc
            log.warning("%s: %s; trying again", what, exc or type(exc).__name__)
            await asyncio.sleep(0.5)
