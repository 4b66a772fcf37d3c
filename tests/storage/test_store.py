"""The embedded store: offsets, dedupe, roll, retention, recovery, corruption, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.filters.query import Query
from collector.storage import Store, TopicConfig
from collector.storage.scan import ScanStats, count, scan
from tests.harness import gnu_grep
from tests.storage.helpers import DATA, T0, Clock, numbered, numbers_in
from wharf import batch as wb
from wharf.errors import (
    CorruptBatch,
    InvalidArgument,
    InvalidTopicName,
    OffsetOutOfRange,
    TopicExists,
    UnknownTopic,
)
from wharf.record import Record

SMALL = TopicConfig(partitions=1, segment_bytes=64 * 1024)


def fill(store: Store, topic: str, batches: int, per: int = 100) -> None:
    for k in range(batches):
        store.append(topic, 0, numbered(k * per, per))


def all_numbers(store: Store, topic: str) -> list[int]:
    part = store.partition(topic, 0)
    return numbers_in(part.read(part.start_offset, max_bytes=1 << 40))


def test_offsets_are_contiguous_and_reads_start_anywhere(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        results = [store.append("app", 0, numbered(k * 100, 100)) for k in range(30)]
        assert [r.base_offset for r in results] == list(range(0, 3000, 100))
        assert all_numbers(store, "app") == list(range(3000))
        first = store.read("app", 0, 1234, max_bytes=1)
        assert first[0].header.base_offset == 1200 and len(first) == 1
        info = store.describe("app").partitions[0]
        assert (info.start_offset, info.end_offset) == (0, 3000)
        assert info.segments > 1  # 64 KiB segments rolled by size
        assert info.min_ts == T0 and info.max_ts == T0 + 2999 * 1_000_000_000
        assert store.read("app", 0, 3000) == []


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        fill(store, "app", 20)
        before = store.describe("app")
    with Store(tmp_path) as store:
        assert store.describe("app") == before
        assert all_numbers(store, "app") == list(range(2000))
        assert store.append("app", 0, numbered(2000, 10)).base_offset == 2000


def test_resent_batches_are_acknowledged_but_not_stored_again(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        fill(store, "app", 5)
        again = store.append("app", 0, numbered(300, 100))
        assert again.duplicate and again.record_count == 0
        # A batch straddling the mark: 450..549, of which 450..499 are stored already.
        part = store.append("app", 0, numbered(450, 100))
        assert not part.duplicate and (part.base_offset, part.record_count) == (500, 50)
        # Another file of the same producer is independent.
        other = store.append("app", 0, numbered(0, 10, file_id="g"))
        assert other.base_offset == 550
        assert all_numbers(store, "app") == [*range(550), *range(10)]
    with Store(tmp_path) as store:  # marks are rebuilt from stored batches
        assert store.append("app", 0, numbered(0, 550)).duplicate
        assert store.append("app", 0, numbered(540, 20)).record_count == 10


def test_marks_rebuild_without_snapshots(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        fill(store, "app", 20)
    for snap in (tmp_path / "topics/app/0").glob("*.hwm"):
        snap.write_bytes(b"garbage")
    with Store(tmp_path) as store:
        assert store.append("app", 0, numbered(1900, 100)).duplicate


def test_topic_names_and_offsets_are_validated(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for bad in ("a/b", "..", ".hidden", "Upper", "x" * 65, "", "a b"):
            with pytest.raises(InvalidTopicName, match="invalid topic name"):
                store.create_topic(bad)
        assert not any((tmp_path / "topics").iterdir())
        store.create_topic("x" * 64)
        store.create_topic("app", SMALL)
        with pytest.raises(TopicExists):
            store.create_topic("app")
        with pytest.raises(UnknownTopic):
            store.describe("nope")
        fill(store, "app", 2)
        with pytest.raises(InvalidArgument, match="negative"):
            store.read("app", 0, -1)
        with pytest.raises(OffsetOutOfRange, match="past the end"):
            store.read("app", 0, 201)
        with pytest.raises(InvalidArgument, match=r"partitions 0\.\.0"):
            store.read("app", 3, 0)
        with pytest.raises(CorruptBatch):
            store.append("app", 0, b"not a batch at all, not even close........................")
        with pytest.raises(InvalidArgument):
            TopicConfig(partitions=0)


def test_roll_by_age_and_retention_by_age(tmp_path: Path) -> None:
    clock = Clock()
    cfg = TopicConfig(segment_ms=1000, retention_ms=10_000)
    with Store(tmp_path, clock_ms=clock) as store:
        store.create_topic("app", cfg)
        for k in range(10):  # one segment per batch: each append is 1.5 s after the previous
            store.append("app", 0, numbered(k * 10, 10))
            clock.now_ms += 1500
        assert store.describe("app").partitions[0].segments == 10
        # Now = 15 s after the first append. Segments last written > 10 s ago (at 0, 1.5, 3
        # and 4.5 s) go; the one written at 6 s stays.
        assert store.enforce_retention() == 4
        info = store.describe("app").partitions[0]
        assert (info.start_offset, info.end_offset, info.segments) == (40, 100, 6)
        assert all_numbers(store, "app") == list(range(40, 100))
        with pytest.raises(OffsetOutOfRange, match="deleted by retention"):
            store.read("app", 0, 39)
        clock.now_ms += 60_000  # everything expired, the active segment too
        store.enforce_retention()
        info = store.describe("app").partitions[0]
        assert (info.start_offset, info.end_offset) == (100, 100)
        assert store.append("app", 0, numbered(100, 5)).base_offset == 100


def test_retention_by_size_deletes_whole_oldest_segments(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", TopicConfig(segment_bytes=64 * 1024, retention_bytes=100_000))
        fill(store, "app", 60)
        part = store.partition("app", 0)
        sizes = [(s.base, s.size) for s in part.segments]
        deleted = store.enforce_retention()
        assert deleted > 0
        kept = [(s.base, s.size) for s in part.segments]
        assert kept == sizes[deleted:]  # the oldest ones, whole, and nothing else
        assert sum(size for _, size in kept) >= 100_000
        assert sum(size for _, size in kept) - kept[0][1] < 100_000
        assert part.start_offset == kept[0][0]
        assert all_numbers(store, "app") == list(range(kept[0][0], 6000))


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", TopicConfig())
        fill(store, "app", 5)
    seg = next((tmp_path / "topics/app/0").glob("*.seg"))
    good = seg.stat().st_size
    half = wb.with_offset(numbered(500, 100), 500, 1)[:300]
    with seg.open("ab") as f:
        f.write(half)
    with Store(tmp_path) as store:
        assert seg.stat().st_size == good
        assert all_numbers(store, "app") == list(range(500))
        assert store.append("app", 0, numbered(500, 100)).base_offset == 500
    assert next(iter(seg.parent.glob("*.torn-*"))).read_bytes() == half


def test_flipped_byte_in_old_segment_names_file_and_position(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        fill(store, "app", 30)
    segs = sorted((tmp_path / "topics/app/0").glob("*.seg"))
    victim = segs[1]
    with Store(tmp_path) as store:
        part = store.partition("app", 0)
        seg = part.segments[1]
        pos, size = seg.entry_bytes(1)
        with victim.open("r+b") as f:
            f.seek(pos + size // 2)
            byte = f.read(1)
            f.seek(pos + size // 2)
            f.write(bytes([byte[0] ^ 0x40]))
        bad_offset = seg.index.base + seg.index.rel_offset[1]
        with pytest.raises(CorruptBatch, match=f"{victim}@{pos}: checksum mismatch"):
            part.read(bad_offset)
        # Everything else is still readable, and a scan reports the one bad batch and goes on.
        assert numbers_in(part.read(0, max_bytes=1)) == list(range(100))
        stats = ScanStats()
        found = [h.offset for h in scan(part, Query(pattern="rec-"), stats=stats)]
        assert len(stats.errors) == 1 and str(victim) in str(stats.errors[0])
        assert found == [o for o in range(3000) if not bad_offset <= o < bad_offset + 100]


def test_damaged_or_missing_indexes_are_rebuilt_with_the_same_answers(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        fill(store, "app", 80)
        before = _answers(store)
    idx = sorted((tmp_path / "topics/app/0").glob("*.idx"))
    assert len(idx) >= 3
    idx[0].unlink()
    idx[1].write_bytes(b"\0" * 100)
    data = bytearray(idx[2].read_bytes())
    data[-5] ^= 0xFF
    idx[2].write_bytes(bytes(data))
    with Store(tmp_path) as store:
        assert _answers(store) == before
    assert idx[0].exists() and idx[1].stat().st_size != 100


def _answers(store: Store) -> tuple[object, ...]:
    part = store.partition("app", 0)
    return (
        store.describe("app"),
        all_numbers(store, "app"),
        [part.offset_for_time(T0 + k * 1_000_000_000) for k in (0, 1, 777, 2999, 7999, 9000)],
        numbers_in(part.read(1555, max_bytes=1)),
        [h.offset for h in scan(part, Query(pattern="rec-0000(12|27)", since_ns=T0 + 10**12))],
    )


def test_offset_for_time(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        fill(store, "app", 10)
        part = store.partition("app", 0)
        assert part.offset_for_time(0) == 0
        assert part.offset_for_time(T0 + 421 * 10**9) == 421
        assert part.offset_for_time(T0 + 421 * 10**9 + 1) == 422
        assert part.offset_for_time(T0 + 10**15) == 1000


@pytest.mark.parametrize(
    ("pattern", "grep_args", "query"),
    [
        ("Firefox", ["-F"], {"fixed": True}),
        ("firefox", ["-F", "-i"], {"fixed": True, "ignore_case": True}),
        ("Mozilla.*Firefox", ["-E"], {}),
        (r"\" 404 [0-9]+", ["-E"], {}),
        ("^[0-9.]+ - - \\[17/May/2015:1[0-2]", ["-E"], {}),
        ("GET", ["-v"], {"invert": True}),
        ("Invalid user [a-z]+ from", ["-E"], {}),
        ("session opened", ["-F", "-i"], {"fixed": True, "ignore_case": True}),
    ],
)
def test_scan_finds_exactly_what_grep_finds(
    tmp_path: Path, pattern: str, grep_args: list[str], query: dict[str, bool]
) -> None:
    with Store(tmp_path) as store:
        store.create_topic("logs", TopicConfig(segment_bytes=256 * 1024))
        expected: list[str] = []
        for name in ("apache_combined.log", "auth.log"):
            path = DATA / "logs" / name
            lines = path.read_text().splitlines()
            for k in range(0, len(lines), 700):
                recs = [
                    Record(ts=T0 + i, line=line, host="h")
                    for i, line in enumerate(lines[k : k + 700])
                ]
                store.append("logs", 0, wb.build(recs))
            out = gnu_grep(*grep_args, "--", pattern, str(path))
            expected += out.stdout.splitlines()
        part = store.partition("logs", 0)
        q = Query(pattern=pattern, **query)
        got = [h.record.line for h in scan(part, q)]
        assert got == expected
        assert count(part, q) == len(expected)


def test_time_and_host_pruning_read_only_what_they_need(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.create_topic("app", TopicConfig())
        for k in range(24):  # one batch per "hour", alternating hosts
            recs = [
                Record(ts=T0 + (k * 3600 + i) * 10**9, line=f"h{k} {i}", host=f"web-{k % 2}")
                for i in range(100)
            ]
            store.append("app", 0, wb.build(recs))
        part = store.partition("app", 0)
        stats = ScanStats()
        q = Query(since_ns=T0 + 5 * 3600 * 10**9, until_ns=T0 + 6 * 3600 * 10**9)
        assert [h.record.line for h in scan(part, q, stats=stats)] == [
            f"h5 {i}" for i in range(100)
        ]
        assert stats.batches_read == 1
        stats = ScanStats()
        assert count(part, Query(hosts=("web-1",)), stats=stats) == 1200
        assert stats.bytes_decompressed < sum(s.size for s in part.segments) * 100  # sanity
        assert stats.batches_read == 24 and stats.records_matched == 1200


def test_reads_see_only_durable_batches_and_files_stay_put(tmp_path: Path) -> None:
    with Store(tmp_path, fsync="interval", fsync_interval_ms=2) as store:
        store.create_topic("app", SMALL)
        futures = [store.submit("app", 0, numbered(k * 10, 10)) for k in range(50)]
        assert [f.result().base_offset for f in futures] == list(range(0, 500, 10))
        assert all_numbers(store, "app") == list(range(500))
    assert sorted(os.listdir(tmp_path)) == ["topics"]


def test_listeners_hear_each_durable_end_until_removed(tmp_path: Path) -> None:
    heard: list[tuple[str, int, int]] = []
    other: list[int] = []

    def listener(topic: str, partition: int, end: int) -> None:
        heard.append((topic, partition, end))

    with Store(tmp_path) as store:
        store.create_topic("app", SMALL)
        store.add_listener(listener)
        store.add_listener(lambda t, p, end: other.append(end))
        store.append("app", 0, numbered(0, 10))
        store.append("app", 0, numbered(10, 5))
        store.remove_listener(listener)
        store.remove_listener(listener)  # removing twice is harmless
        store.append("app", 0, numbered(15, 5))
    assert heard == [("app", 0, 10), ("app", 0, 15)]
    assert other == [10, 15, 20]  # the other listener stays
