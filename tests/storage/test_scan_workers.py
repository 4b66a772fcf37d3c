"""Counts on worker processes (``collector.storage.workers``) equal counts in the collector's
process, for every kind of query, with corrupt batches, segments deleted mid-scan and
cancellation. Real worker processes, real segment files."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from collector.filters.query import Query
from collector.storage import Store, TopicConfig
from collector.storage.scan import ScanStats, Watch, count_partitions
from collector.storage.workers import ScanWorkers
from tests.storage.helpers import T0
from wharf import batch as wb
from wharf.errors import InvalidArgument
from wharf.record import Record

PARTS = 3
HOSTS = ("web-1", "web-2", "db-1")


@pytest.fixture(scope="module")
def workers() -> Iterator[ScanWorkers]:
    w = ScanWorkers(2, min_bytes=0)
    try:
        yield w
    finally:
        w.close()


def _hex(n: int) -> str:
    return sha256(str(n).encode()).hexdigest()  # incompressible: batches fill segments


def _fill(store: Store) -> None:
    store.create_topic("app", TopicConfig(partitions=PARTS, segment_bytes=64 << 10))
    n = 0
    for b in range(60):
        recs = []
        for i in range(200):
            host = HOSTS[(b + i) % len(HOSTS)]
            level = "ERROR" if n % 7 == 0 else "INFO"
            recs.append(
                Record(
                    ts=T0 + n * 1_000_000_000,
                    line=f"{level} n={n} user=u{n % 13} took {n % 97}ms id={_hex(n)}",
                    host=host,
                    source=f"/var/log/{'a' if i % 2 else 'b'}.log",
                )
            )
            n += 1
        store.append("app", b % PARTS, wb.build(recs))


QUERIES = [
    Query(pattern="ERROR", fixed=True),
    Query(pattern="error", fixed=True, ignore_case=True),
    Query(pattern=r"user=u1[0-2] took \d{2}ms"),
    Query(pattern="ERROR", fixed=True, invert=True),
    Query(),
    Query(pattern="took", fixed=True, since_ns=T0 + 1500 * 10**9, until_ns=T0 + 7300 * 10**9),
    Query(pattern="n=1", fixed=True, hosts=("web-*",)),
    Query(pattern="ms", fixed=True, sources=("/var/log/a.log",), hosts=("db-1",)),
    Query(pattern="nothing like this", fixed=True),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q)[:60])
def test_worker_counts_equal_in_process_counts(
    tmp_path: Path, workers: ScanWorkers, query: Query
) -> None:
    with Store(tmp_path) as store:
        _fill(store)
        parts = store.partitions("app")
        assert sum(len(p.segments) for p in parts) > PARTS  # several segments per partition
        here, there = ScanStats(), ScanStats()
        expected = count_partitions(parts, query, stats=here)
        got = workers.count_partitions(parts, query, stats=there)
    assert got == expected
    assert there.records_matched == here.records_matched == sum(expected)
    assert (there.batches_read, there.bytes_read, there.bytes_decompressed) == (
        here.batches_read,
        here.bytes_read,
        here.bytes_decompressed,
    )


def test_a_corrupt_batch_is_reported_and_the_rest_is_counted(
    tmp_path: Path, workers: ScanWorkers
) -> None:
    with Store(tmp_path) as store:
        _fill(store)
        part = store.partition("app", 1)
        seg = part.segments[0]
        pos, size = seg.entry_bytes(0)
        with seg.path.open("r+b") as f:
            f.seek(pos + size // 2)
            byte = f.read(1)
            f.seek(pos + size // 2)
            f.write(bytes([byte[0] ^ 0x40]))
        parts = store.partitions("app")
        here, there = ScanStats(), ScanStats()
        query = Query(pattern="INFO", fixed=True)
        expected = count_partitions(parts, query, stats=here)
        got = workers.count_partitions(parts, query, stats=there)
    assert got == expected
    assert len(there.errors) == len(here.errors) == 1
    assert f"{seg.path}@{pos}: checksum mismatch" in str(there.errors[0])


def test_a_segment_deleted_under_the_scan_is_an_error_not_a_crash(
    tmp_path: Path, workers: ScanWorkers
) -> None:
    with Store(tmp_path) as store:
        _fill(store)
        parts = store.partitions("app")
        gone = parts[0].segments[0].path
        gone.unlink()  # what retention does; the store still lists it until it notices
        stats = ScanStats()
        got = workers.count_partitions(parts, Query(pattern="n=", fixed=True), stats=stats)
    assert got is not None and sum(got) > 0
    assert stats.errors and all("deleted by retention" in str(e) for e in stats.errors)
    assert all(str(gone) in str(e) for e in stats.errors)


def test_small_scans_stay_in_process_and_bad_patterns_fail_once(tmp_path: Path) -> None:
    picky = ScanWorkers(2, min_bytes=1 << 40)
    try:
        with Store(tmp_path) as store:
            _fill(store)
            parts = store.partitions("app")
            assert picky.count_partitions(parts, Query(pattern="x"), stats=ScanStats()) is None
            picky.min_bytes = 0
            with pytest.raises(InvalidArgument, match="invalid regular expression"):
                picky.count_partitions(parts, Query(pattern="(unclosed"), stats=ScanStats())
    finally:
        picky.close()


def test_a_cancelled_count_stops_without_merging(tmp_path: Path, workers: ScanWorkers) -> None:
    with Store(tmp_path) as store:
        _fill(store)
        cancel = threading.Event()
        cancel.set()
        stats = ScanStats()
        ticks: list[int] = []
        got = workers.count_partitions(
            store.partitions("app"),
            Query(pattern="n=", fixed=True),
            stats=stats,
            watch=Watch(cancel, lambda: ticks.append(1)),
        )
    assert got == [0] * PARTS and stats.batches_read == 0 and ticks == []


def test_workers_skip_what_filters_rule_out_and_swaps_wait_for_them(
    tmp_path: Path, workers: ScanWorkers
) -> None:
    """On compacted segments the planner drops the batches a needle's filter rules out before
    any worker reads them; a compaction's swap (which renames files workers open by path)
    waits while a count holds the gate, and counts wait while a swap does."""
    needle = Query(pattern="n=4321 user=", fixed=True)  # "4321" and "user": whole tokens
    with Store(tmp_path) as store:
        _fill(store)
        store.compact("app")
        parts = store.partitions("app")
        here, there = ScanStats(), ScanStats()
        expected = count_partitions(parts, needle, stats=here)
        assert sum(expected) == 1
        assert workers.count_partitions(parts, needle, stats=there) == expected
        assert there.batches_filtered == here.batches_filtered > 0
        assert there.batches_read == here.batches_read < there.batches_total
    order: list[str] = []
    with workers.gate.shared():
        swap = threading.Thread(target=lambda: _exclusively(workers, order))
        swap.start()
        swap.join(0.2)  # it cannot get in while the count holds the gate
        order.append("count done")
    swap.join(30)
    assert order == ["count done", "swap"]


def _exclusively(workers: ScanWorkers, order: list[str]) -> None:
    with workers.gate.exclusive():
        order.append("swap")
