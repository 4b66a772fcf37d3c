"""The embedded store's bounds: open files pooled whatever the number of topics, a topic limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.storage import Store, TopicConfig
from tests.storage.helpers import numbered, numbers_in
from wharf.errors import StoreError, code_of

SMALL = TopicConfig(partitions=1, segment_bytes=64 * 1024)


def open_files_under(directory: Path) -> list[str]:
    """This process's open descriptors on files below ``directory``."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between the listing and the look
            continue
        if target.startswith(f"{directory}/"):
            out.append(target)
    return out


def test_open_files_stay_within_the_pool_however_many_topics(tmp_path: Path) -> None:
    """Issue 13, item 4: every topic held two descriptors for good (a read and a write one per
    partition, plus one per sealed segment), so enough topics ran the collector out of them and
    it could not even reopen its own data."""
    names = [f"t{i:03d}" for i in range(60)]
    with Store(tmp_path, max_open_files=8) as store:
        for name in names:
            store.create_topic(name, SMALL)
        for k in range(3):  # rolls: some sealed segments per partition
            futures = [store.submit(n, 0, numbered(k * 1000, 1000, file_id=n)) for n in names]
            assert all(f.result().record_count == 1000 for f in futures)
        for name in names:
            assert numbers_in(store.partition(name, 0).read(0, 1 << 30)) == list(range(3000))
        assert store.describe(names[0]).partitions[0].segments > 1
        assert len(open_files_under(tmp_path)) <= 8
    assert open_files_under(tmp_path) == []
    with Store(tmp_path, max_open_files=8) as store:  # reopening needs no more
        assert len(open_files_under(tmp_path)) <= 8
        last = names[-1]
        assert store.append(last, 0, numbered(3000, 10, file_id=last)).base_offset == 3000
        assert numbers_in(store.partition(names[0], 0).read(0, 1 << 30)) == list(range(3000))
        assert len(open_files_under(tmp_path)) <= 8


def test_a_segment_deleted_by_retention_stays_readable_by_whoever_holds_it(
    tmp_path: Path,
) -> None:
    with Store(tmp_path, max_open_files=2) as store:
        store.create_topic("app", SMALL)
        for k in range(20):
            store.append("app", 0, numbered(k * 1000, 1000))
        part = store.partition("app", 0)
        held = list(part.refs(0))
        store.create_topic("other", SMALL)  # other files take the pool's two places
        store.append("other", 0, numbered(0, 10))
        assert store.partition("other", 0).read(0)
        part.config = TopicConfig(partitions=1, segment_bytes=64 * 1024, retention_bytes=1)
        assert store.enforce_retention() > 0
        assert part.start_offset > 0
        assert numbers_in([ref.load() for ref in held]) == list(range(20000))


def test_a_topic_past_the_limit_is_refused_with_a_retriable_store_error(tmp_path: Path) -> None:
    with Store(tmp_path, max_topics=3) as store:
        for name in ("a", "b", "c"):
            store.ensure_topic(name)
        with pytest.raises(StoreError, match=r"limits\.max_topics") as refused:
            store.ensure_topic("d")
        assert code_of(refused.value) == "store_error" and refused.value.retriable
        assert store.topics() == ["a", "b", "c"]
        assert not (tmp_path / "topics" / "d").exists()
        store.ensure_topic("a")  # an existing topic is not a new one
        store.delete_topic("b")
        store.ensure_topic("d")
    with Store(tmp_path, max_topics=1) as store:  # a lowered limit keeps what exists
        assert store.topics() == ["a", "c", "d"]
        assert store.append("c", 0, numbered(0, 5)).base_offset == 0
        with pytest.raises(StoreError):
            store.create_topic("e")
