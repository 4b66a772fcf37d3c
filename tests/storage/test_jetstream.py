"""The cluster backend against a real nats-server: exactly once under contention, retention,
high-water marks that outlive the messages, what another collector sees."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from collector.storage import TopicConfig
from collector.storage.jetstream import JetStreamStore
from tests.harness.wait import wait_for
from tests.storage.helpers import numbered, numbers_in
from wharf import batch as wb
from wharf.errors import BatchTooLarge, TopicExists, UnknownTopic

pytestmark = pytest.mark.nats
_names = itertools.count()


def fresh(urls: list[str], name: str | None = None) -> JetStreamStore:
    return JetStreamStore(urls, name=name or f"s{os.getpid()}-{next(_names)}", replicas=1)


def everything(store: JetStreamStore, topic: str, partition: int = 0) -> list[wb.Batch]:
    part = store.partition(topic, partition)
    return part.read(part.start_offset, max_bytes=1 << 40)


def test_topics_are_shared_and_offsets_continue_across_collectors(nats_urls: list[str]) -> None:
    with fresh(nats_urls) as a, fresh(nats_urls, a.name) as b:
        a.create_topic("app.logs", TopicConfig(partitions=2))
        wait_for(lambda: "app.logs" in b.topics(), 30, "topic seen by the other collector")
        with pytest.raises(TopicExists):
            b.create_topic("app.logs")
        assert a.append("app.logs", 1, numbered(0, 10)).base_offset == 0
        assert b.append("app.logs", 1, numbered(10, 5)).base_offset == 10
        assert a.append("app.logs", 1, numbered(15, 5)).base_offset == 15
        for s in (a, b):
            wait_for(lambda s=s: s.partition("app.logs", 1).durable_offset == 20, 30, "index")
            assert numbers_in(everything(s, "app.logs", 1)) == list(range(20))
            assert s.describe("app.logs").partitions[0].end_offset == 0
        # a resend through either collector is a duplicate
        assert b.append("app.logs", 1, numbered(0, 10)).duplicate
        b.delete_topic("app.logs")
        wait_for(lambda: "app.logs" not in a.topics(), 30, "deletion seen")
        with pytest.raises(UnknownTopic):
            a.describe("app.logs")


def test_a_stale_index_loses_the_compare_and_set_and_catches_up(nats_urls: list[str]) -> None:
    """Forced contention: B stops following the stream, A appends; B's next append is refused
    by the compare-and-set, B reads what it missed and stores after it."""
    with fresh(nats_urls) as a, fresh(nats_urls, a.name) as b:
        a.create_topic("t")
        wait_for(lambda: "t" in b.topics(), 30, "topic")
        bpart = b.partition("t", 0)
        b.client.run(bpart.close(), 10)  # no more index feed: B's view is frozen at empty
        for k in range(3):
            a.append("t", 0, numbered(k * 10, 10, file_id="a"))
        r = b.append("t", 0, numbered(0, 4, file_id="b"))
        assert (r.base_offset, r.record_count) == (30, 4)
        assert bpart.conflicts >= 1
        # and B's resend of A's data (same file, same producer) is a duplicate by its marks
        assert b.append("t", 0, numbered(10, 10, file_id="a")).duplicate
        wait_for(lambda: a.partition("t", 0).durable_offset == 34, 30, "A sees B's batch")
        batches = everything(a, "t")
        assert [x.header.base_offset for x in batches] == [0, 10, 20, 30]


def test_two_collectors_appending_at_once(nats_urls: list[str]) -> None:
    """Two writers, one partition, no pauses: offsets contiguous, every record once."""
    per_writer, size = 60, 7
    with fresh(nats_urls) as a, fresh(nats_urls, a.name) as b:
        a.create_topic("busy")
        wait_for(lambda: "busy" in b.topics(), 30, "topic")
        errors: list[BaseException] = []

        def write(store: JetStreamStore, file_id: str, first: int) -> None:
            try:
                for k in range(per_writer):
                    n = first + k * size
                    store.append("busy", 0, numbered(n, size, file_id=file_id))
                    # each batch twice: the resend must be a duplicate
                    assert store.append("busy", 0, numbered(n, size, file_id=file_id)).duplicate
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(a, "fa", 0)),
            threading.Thread(target=write, args=(b, "fb", 1_000_000)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        total = 2 * per_writer * size
        for s in (a, b):
            wait_for(lambda s=s: s.partition("busy", 0).durable_offset == total, 30, "index")
            batches = everything(s, "busy")
            bases = [x.header.base_offset for x in batches]
            assert bases == [k * size for k in range(2 * per_writer)]  # contiguous, in order
            got = numbers_in(batches)
            assert sorted(got) == sorted(
                [n for k in range(per_writer) for n in range(k * size, k * size + size)]
                + [
                    n
                    for k in range(per_writer)
                    for n in range(1_000_000 + k * size, 1_000_000 + k * size + size)
                ]
            )
            assert len(got) == len(set(got))


def test_retention_deletes_oldest_batches_and_marks_still_dedupe(nats_urls: list[str]) -> None:
    one = len(numbered(0, 10))
    config = TopicConfig(partitions=1, retention_bytes=int(one * 2.5))
    with fresh(nats_urls) as a:
        name = a.name
        a.create_topic("r", config)
        for k in range(6):
            a.append("r", 0, numbered(k * 10, 10))
        part = a.partition("r", 0)

        def retained() -> bool:
            a.enforce_retention()
            return part.start_offset >= 30

        wait_for(retained, 30, "retention by size")
        # whole batches, oldest first: what is left is the newest, contiguous to the end
        left = everything(a, "r")
        assert [x.header.base_offset for x in left] == list(range(part.start_offset, 60, 10))
        assert part.durable_offset == 60
        # a resend of data older than the retained range is still recognized
        assert a.append("r", 0, numbered(0, 10)).duplicate
    # ... by another collector started later, from the snapshot (enforce_retention and close
    # save it)
    with fresh(nats_urls, name) as b:
        assert b.partition("r", 0).start_offset >= 30
        assert b.append("r", 0, numbered(0, 10)).duplicate
        assert b.append("r", 0, numbered(60, 10)).base_offset == 60


def test_retention_by_age_empties_a_partition_and_offsets_continue(nats_urls: list[str]) -> None:
    with fresh(nats_urls) as a:
        name = a.name
        a.create_topic("old", TopicConfig(partitions=1, retention_ms=1000))
        a.append("old", 0, numbered(0, 10))
        a.append("old", 0, numbered(10, 10))
        a.enforce_retention()  # the snapshot, before the messages expire
        part = a.partition("old", 0)
        deadline = time.monotonic() + 30

        def expired() -> bool:
            a.enforce_retention()
            return part.start_offset == 20 or time.monotonic() > deadline

        wait_for(expired, 30, "age retention")
        assert (part.start_offset, part.durable_offset) == (20, 20)
        assert a.append("old", 0, numbered(5, 10)).duplicate
    with fresh(nats_urls, name) as b:
        p = b.partition("old", 0)
        assert (p.start_offset, p.durable_offset) == (20, 20)
        assert b.append("old", 0, numbered(0, 10)).duplicate
        assert b.append("old", 0, numbered(20, 3)).base_offset == 20


def test_a_batch_past_the_cluster_message_size_is_refused_clearly(nats_urls: list[str]) -> None:
    with JetStreamStore(
        nats_urls, name=f"s{os.getpid()}-{next(_names)}", replicas=1, max_batch_bytes=64 << 10
    ) as s:
        s.create_topic("big")
        data = numbered(0, 3000, width=200)
        assert len(data) > 64 << 10
        with pytest.raises(BatchTooLarge, match="cluster's message size"):
            s.append("big", 0, data)
        assert s.partition("big", 0).durable_offset == 0
        assert s.append("big", 0, numbered(0, 10)).base_offset == 0


def test_scans_build_token_filters_that_later_scans_skip_by(nats_urls: list[str]) -> None:
    """The cluster's filters: built from the batches a scan read, used by the next scans; a
    topic deleted and created again does not inherit them (its sequences start over)."""
    from collector.filters.query import Query  # noqa: PLC0415 (only this test needs it)
    from collector.storage.scan import ScanStats  # noqa: PLC0415

    query = Query(pattern="-00000123 ", fixed=True)  # the record numbered 123, a whole token
    with fresh(nats_urls) as a, fresh(nats_urls, a.name) as b:
        a.create_topic("t")
        for k in range(12):
            a.append("t", 0, numbered(k * 50, 50))
        wait_for(lambda: a.partition("t", 0).durable_offset == 600, 30, "index")
        first = ScanStats()
        assert a.count([("t", 0)], query, stats=first) == [1]
        assert first.batches_read == 12 and first.batches_filtered == 0
        # The builder drops what it cannot keep up with (8 queued); later scans offer it again.
        wait_for(
            lambda: len(a.filters) == 12 or (a.count([("t", 0)], query) and False),
            30,
            "filters built from what the scans read",
        )
        again = ScanStats()
        assert a.count([("t", 0)], query, stats=again) == [1]
        assert again.batches_read == 1 and again.batches_filtered == 11
        assert a.backend_status()["token_filters"]["batches"] == 12  # type: ignore[index]
        # the other collector read nothing yet: it reads everything
        wait_for(lambda: b.partition("t", 0).durable_offset == 600, 30, "index of b")
        other = ScanStats()
        assert b.count([("t", 0)], query, stats=other) == [1] and other.batches_filtered == 0
        # deleted by b and created again: its first message (sequence 1 again) now holds record
        # 123, which a's filter of the old sequence 1 (records 0..49) rules out
        b.delete_topic("t")
        wait_for(lambda: "t" not in a.topics(), 30, "deletion seen")
        b.create_topic("t")
        b.append("t", 0, numbered(100, 50))
        wait_for(lambda: "t" in a.topics(), 30, "topic seen again")
        wait_for(lambda: a.partition("t", 0).durable_offset == 50, 30, "index again")
        assert a.count([("t", 0)], query) == [1]
    off = JetStreamStore(nats_urls, name=f"s{os.getpid()}-{next(_names)}", replicas=1,
                         use_filters=False)  # fmt: skip
    with off:
        off.create_topic("t")
        off.append("t", 0, numbered(0, 50))
        wait_for(lambda: off.partition("t", 0).durable_offset == 50, 30, "index")
        off.count([("t", 0)], query)
        assert len(off.filters) == 0  # filters = false: none built, none used
