"""The inputs' sink on a real embedded store: batching, durability, order, bounded memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from collector.inputs.sink import MAX_BATCH_RECORDS, Sink, record_size
from collector.metrics import Metrics
from collector.storage import Store
from wharf.record import Record
from wharf.topics import TopicConfig


def stored(store: Store, topic: str) -> list[Record]:
    """Every record of ``topic``, partition by partition, in offset order."""
    out: list[Record] = []
    for part in store.partitions(topic):
        offset = part.start_offset
        while offset < part.durable_offset:
            batches = part.read(offset)
            for b in batches:
                out.extend(b.records())
            offset = batches[-1].header.next_offset
    return out


def batch_sizes(store: Store, topic: str) -> list[int]:
    sizes: list[int] = []
    for part in store.partitions(topic):
        sizes.extend(ref.count for ref in part.refs())
    return sizes


def rec(i: int, host: str = "h1") -> Record:
    return Record(ts=1_700_000_000_000_000_000 + i, line=f"line {i}", host=host, source="app")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data") as s:
        s.create_topic("logs", TopicConfig(partitions=3))
        yield s


def make_sink(store: Store, *, linger_s: float = 0.05, budget: int = 8 << 20) -> Sink:
    counters = Metrics().input_counters("test", "syslog")
    pool = ThreadPoolExecutor(2)
    return Sink(store, "logs", counters, pool, linger_s=linger_s, max_pending_bytes=budget)


def test_durable_puts_are_stored_before_they_return(store: Store) -> None:
    async def main() -> None:
        sink = make_sink(store, linger_s=10.0)  # durable puts never wait for the linger
        await sink.start()
        await sink.put([rec(i) for i in range(5)], durable=True)
        assert [r.line for r in stored(store, "logs")] == [f"line {i}" for i in range(5)]
        assert sink.counters.counts["stored"] == 5
        await sink.close()

    asyncio.run(main())


def test_concurrent_durable_puts_share_batches(store: Store) -> None:
    """Group commit: 200 senders at once make far fewer batches than 200, each acknowledged
    only once its records are durable."""

    async def main() -> None:
        sink = make_sink(store)
        await sink.start()
        await asyncio.gather(*(sink.put([rec(i)], durable=True) for i in range(200)))
        assert sorted(r.line for r in stored(store, "logs")) == sorted(
            f"line {i}" for i in range(200)
        )
        assert len(batch_sizes(store, "logs")) < 50
        await sink.close()

    asyncio.run(main())


def test_lingering_records_leave_in_order_per_host(store: Store) -> None:
    async def main() -> None:
        sink = make_sink(store, linger_s=0.02)
        await sink.start()
        hosts = ["a", "b", "c", "d"]
        for i in range(3 * MAX_BATCH_RECORDS // 2):
            await sink.put([rec(i, hosts[i % 4])])
        await sink.close()
        got = stored(store, "logs")
        assert len(got) == 3 * MAX_BATCH_RECORDS // 2
        for h in hosts:
            mine = [r.ts for r in got if r.host == h]
            assert mine == sorted(mine)  # each host's records keep their order
        assert max(batch_sizes(store, "logs")) <= MAX_BATCH_RECORDS
        assert sink.budget.used == 0

    asyncio.run(main())


def test_offer_drops_when_full_and_put_waits(store: Store) -> None:
    """With the budget held by queued records, offer() refuses at once and put() waits until
    the queued records are appended."""

    async def main() -> None:
        one = record_size(rec(0))
        sink = make_sink(store, linger_s=0.3, budget=10 * one)
        await sink.start()
        assert sink.offer([rec(i) for i in range(10)])
        assert not sink.offer([rec(10)])  # full: nothing queued
        waiter = asyncio.create_task(sink.put([rec(11)]))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # waits for room, which comes when the linger ends
        await asyncio.wait_for(waiter, 5)
        await sink.close()
        assert sorted(r.ts for r in stored(store, "logs")) == sorted(
            rec(i).ts for i in (*range(10), 11)
        )

    asyncio.run(main())


def test_close_appends_what_is_queued(store: Store) -> None:
    async def main() -> None:
        sink = make_sink(store, linger_s=60.0)
        await sink.start()
        await sink.put([rec(i) for i in range(7)])
        assert stored(store, "logs") == []
        await sink.close()
        assert len(stored(store, "logs")) == 7

    asyncio.run(main())


def test_a_failed_durable_append_raises_to_its_sender(store: Store) -> None:
    async def main() -> None:
        sink = make_sink(store)
        await sink.start()
        bad = Record(ts=2**63, line="out of range", host="h")  # the batch cannot be built
        with pytest.raises(Exception, match="range"):
            await sink.put([bad], durable=True)
        await sink.put([rec(1)], durable=True)  # the sink goes on
        assert [r.line for r in stored(store, "logs")] == ["line 1"]
        assert sink.budget.used == 0
        await sink.close()

    asyncio.run(main())


def test_records_nobody_waits_for_are_dropped_and_counted_when_unstorable(store: Store) -> None:
    async def main() -> None:
        sink = make_sink(store, linger_s=0.0)
        await sink.start()
        await sink.put([Record(ts=2**63, line="out of range", host="h")])
        await sink.put([rec(1)])
        await sink.close()
        assert sink.counters.counts["dropped"] == 1
        assert [r.line for r in stored(store, "logs")] == ["line 1"]

    asyncio.run(main())
