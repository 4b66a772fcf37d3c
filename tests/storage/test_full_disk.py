"""The embedded store on a real full disk (a small tmpfs, so these need root): clean errors,
recovery once space is freed without reopening the store, and a start on a disk still full."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.storage import Store, TopicConfig
from tests.harness import wait_for
from tests.storage.helpers import fill_disk, numbered, numbers_in, small_disk
from wharf import batch as wb
from wharf.errors import StoreError

WAIT_S = 30.0  # a failure detector, not a speed check


def test_creating_a_topic_on_a_full_disk_is_a_retriable_store_error(tmp_path: Path) -> None:
    """Issue 13, item 11 (the store's half): the OSError escaped as such, and a half-made
    topic directory stayed behind."""
    with small_disk(tmp_path / "disk") as disk, Store(disk / "data") as store:
        store.ensure_topic("a")
        filler = fill_disk(disk)
        with pytest.raises(StoreError) as refused:
            store.ensure_topic("b")
        assert refused.value.retriable
        assert store.topics() == ["a"]
        assert not (disk / "data" / "topics" / "b").exists()
        filler.unlink()
        store.ensure_topic("b")
        assert store.append("b", 0, numbered(0, 10)).base_offset == 0


def test_a_partition_taken_offline_by_a_full_disk_comes_back_once_space_is_freed(
    tmp_path: Path,
) -> None:
    """Issue 13, item 10 (the store's half): the partition stayed offline until a restart, and
    nothing but its NACKs said so."""
    with small_disk(tmp_path / "disk") as disk:
        with Store(disk / "data") as store:
            store.create_topic("t", TopicConfig(partitions=1))
            store.append("t", 0, numbered(0, 100))
            assert store.health() == []
            filler = fill_disk(disk)
            with pytest.raises(StoreError):
                store.append("t", 0, numbered(100, 2000))
            problems = store.health()
            assert len(problems) == 1 and "t/0" in problems[0], problems
            with pytest.raises(StoreError, match="offline"):
                store.append("t", 0, numbered(100, 2000))  # a resend, still no space
            filler.unlink()
            wait_for(lambda: store.health() == [], WAIT_S, "the partition back online")
            assert store.append("t", 0, numbered(100, 2000)).base_offset == 100
            assert store.append("t", 0, numbered(100, 2000)).duplicate
            assert numbers_in(store.partition("t", 0).read(0, 1 << 30)) == list(range(2100))
        with Store(disk / "data") as store:  # nothing half-written was left in the segment
            assert numbers_in(store.partition("t", 0).read(0, 1 << 30)) == list(range(2100))


def test_a_store_opens_on_a_full_disk_and_cuts_its_torn_tail_without_a_partial_copy(
    tmp_path: Path,
) -> None:
    """Issue 13, item 12 (the store's half): recovery saved the torn tail beside the segment
    before cutting it; on a full disk that copy failed half-written, the store did not open,
    and every attempt left one more partial copy eating the space freed since."""
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        with Store(data) as store:
            store.create_topic("t", TopicConfig(partitions=1))
            for k in range(5):
                store.append("t", 0, numbered(k * 100, 100))
        seg = next((data / "topics" / "t" / "0").glob("*.seg"))
        good = seg.stat().st_size
        torn = wb.with_offset(numbered(500, 3000), 500, 1)
        with seg.open("ab") as f:
            f.write(torn[: len(torn) - 100])
        fill_disk(disk)
        for _ in range(2):
            with Store(data) as store:
                assert seg.stat().st_size == good
                assert numbers_in(store.partition("t", 0).read(0, 1 << 30)) == list(range(500))
        copies = list(seg.parent.glob("*.torn-*"))
        assert all(c.read_bytes() == torn[: len(torn) - 100] for c in copies), [
            (c.name, c.stat().st_size) for c in copies
        ]
        free = os.statvfs(disk)
        assert free.f_bavail * free.f_frsize >= len(torn) // 2  # the cut bytes were given back
