"""Compaction of sealed segments: every reader's answers unchanged, stored bytes smaller, token
filters that skip batches and never hide a record, files that always describe one segment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.filters.query import Query
from collector.storage import Store
from collector.storage.compaction import CompactionSettings
from collector.storage.scan import ScanStats
from tests.storage.helpers import T0, numbered
from wharf import batch as wb
from wharf.errors import InvalidArgument
from wharf.record import Record
from wharf.topics import TopicConfig

SMALL = TopicConfig(partitions=2, segment_bytes=64 << 10)  # the smallest allowed
FAST = CompactionSettings(enabled=False, level=9)  # compacted on demand, quickly


BATCHES = 48  # of 200 records, ~10 KiB stored each: 3 sealed segments per partition


def _fill(store: Store, topic: str = "app") -> None:
    store.create_topic(topic, SMALL)
    for i in range(BATCHES):
        store.append(topic, i % 2, numbered(i * 200, 200, file_id=f"f{i % 2}"))


def _everything(store: Store, topic: str = "app") -> list[tuple[int, int, Record]]:
    """(partition, offset, record) of every stored record, read by offset."""
    out = []
    for p in store.partitions(topic):
        for b in p.read(0, 1 << 30):
            for i, rec in enumerate(b.records()):
                out.append((p.number, b.header.base_offset + i, rec))
    return out


def _covered(batches: list[wb.Batch]) -> dict[tuple[bytes, str], list[tuple[int, int]]]:
    """The file bytes the batches carry, per (producer, file), adjacent spans joined: merging
    batches joins their spans, and must not change what they cover."""
    out: dict[tuple[bytes, str], list[tuple[int, int]]] = {}
    for b in batches:
        for s in b.spans:
            ranges = out.setdefault((b.header.producer_id, s.file_id), [])
            if ranges and ranges[-1][1] == s.start:
                ranges[-1] = (ranges[-1][0], s.end)
            else:
                ranges.append((s.start, s.end))
    return out


def _files(store: Store, topic: str = "app") -> list[str]:
    return sorted(
        f"{p.parent.name}/{p.name}" for p in (store.data_dir / "topics" / topic).glob("*/*")
    )


def test_compaction_keeps_every_answer_and_shrinks_the_files(tmp_path: Path) -> None:
    with Store(tmp_path, compaction_settings=FAST) as store:
        _fill(store)
        before = _everything(store)
        spans = [_covered(p.read(0, 1 << 30)) for p in store.partitions("app")]
        marks = [p.marks.encode() for p in store.partitions("app")]
        times = [p.offset_for_time(T0 + 600 * 1_000_000_000) for p in store.partitions("app")]
        raw = [p.line_bytes() for p in store.partitions("app")]
        stored = sum(p.size_bytes for p in store.partitions("app"))
        result = store.compact("app")
        assert not result.errors
        assert result.segments >= 4 and result.batches == BATCHES
        assert result.bytes_after < result.bytes_before
        assert _everything(store) == before
        assert [_covered(p.read(0, 1 << 30)) for p in store.partitions("app")] == spans
        assert [p.marks.encode() for p in store.partitions("app")] == marks
        assert [p.offset_for_time(T0 + 600 * 1_000_000_000) for p in store.partitions("app")] == (
            times
        )
        assert [p.line_bytes() for p in store.partitions("app")] == raw
        assert sum(p.size_bytes for p in store.partitions("app")) < stored
        info = store.describe("app").partitions
        assert sum(p.compaction.segments for p in info if p.compaction) == result.segments
        assert sum(p.compaction.filter_bytes for p in info if p.compaction) > 0
        assert store.compact("app").segments == 0  # nothing sealed is left uncompacted
        assert not [f for f in _files(store) if f.endswith((".compacting", ".tmp"))]
    with Store(tmp_path) as store:
        assert _everything(store) == before
        assert store.describe("app").partitions[0].compaction == info[0].compaction


def test_fields_and_producers_survive_compaction(tmp_path: Path) -> None:
    recs = [
        Record(ts=T0 + i, line=f"GET /x{i} 200", host=f"h{i % 3}", source="/a.log",
               level="info", fields={"status": 200, "path": f"/x{i}", "ms": i / 3})
        for i in range(300)
    ]  # fmt: skip
    pid = bytes(range(16))
    with Store(tmp_path, compaction_settings=FAST) as store:
        store.create_topic("web", TopicConfig(segment_bytes=64 << 10))
        for k in range(3):
            store.append("web", 0, wb.build(recs[k * 100 : (k + 1) * 100], producer_id=pid))
            store.run_in_committer(store.partition("web", 0).roll)
        before = [(b.header, b.records()) for b in store.read("web", 0, 0, 1 << 30)]
        store.compact("web")
        after = [(b.header, b.records()) for b in store.read("web", 0, 0, 1 << 30)]
    assert [r for _, r in after] == [r for _, r in before]
    for (h1, _), (h2, _) in zip(before, after, strict=True):
        assert (h1.base_offset, h1.append_ms, h1.producer_id, h1.min_ts, h1.max_ts) == (
            h2.base_offset, h2.append_ms, h2.producer_id, h2.min_ts, h2.max_ts
        )  # fmt: skip


def test_a_needle_reads_only_the_batch_that_holds_it(tmp_path: Path) -> None:
    with Store(tmp_path, compaction_settings=FAST) as store:
        _fill(store)
        needle = next(r.line for _, _, r in _everything(store) if r.line.startswith("rec-00000777"))
        query = Query(pattern=f"-{needle[4:12]} ", fixed=True)  # "-00000777 ": a whole token
        full = ScanStats()
        assert sum(store.count([("app", 0), ("app", 1)], query, stats=full)) == 1
        store.compact("app")
        stats = ScanStats()
        assert sum(store.count([("app", 0), ("app", 1)], query, stats=stats)) == 1
        assert stats.batches_read == 1 and stats.batches_filtered == stats.batches_total - 1
        assert full.batches_filtered == 0 and full.batches_read == BATCHES
    off = CompactionSettings(enabled=False, filters=False)
    with Store(tmp_path, compaction_settings=off) as store:
        stats = ScanStats()
        assert sum(store.count([("app", 0), ("app", 1)], query, stats=stats)) == 1
        assert stats.batches_filtered == 0 and stats.batches_read == stats.batches_total > 1


def test_a_damaged_filter_costs_speed_never_a_record(tmp_path: Path) -> None:
    with Store(tmp_path, compaction_settings=FAST) as store:
        _fill(store)
        store.compact("app")
        query = Query(pattern="-00000123 ", fixed=True)
        assert sum(store.count([("app", 0), ("app", 1)], query)) == 1
        tok = next(p for p in (tmp_path / "topics/app").glob("*/*.tok"))
        data = bytearray(tok.read_bytes())
        data[-40:] = bytes(40)  # zero the end of the last filter: its checksum no longer holds
        tok.write_bytes(bytes(data))
        for p in store.partitions("app"):
            for seg in p.segments:
                if seg.filters is not None and seg.filters.path == tok:
                    last = len(seg.index) - 1
                    assert seg.filters.may_contain(last, [b"absent-token"])  # doubt: read it
        assert sum(store.count([("app", 0), ("app", 1)], query)) == 1


def test_filters_that_describe_other_bytes_are_dropped_on_open(tmp_path: Path) -> None:
    with Store(tmp_path, compaction_settings=FAST) as store:
        _fill(store)
        store.compact("app")
    tok = sorted((tmp_path / "topics/app/0").glob("*.tok"))[0]
    tok.write_bytes(tok.read_bytes()[:30])  # torn
    with Store(tmp_path, compaction_settings=FAST) as store:
        assert not tok.exists()  # removed: the segment counts as not compacted
        assert store.compact("app").segments == 1  # and is compacted (filtered) again
        assert tok.exists()
        assert sum(store.count([("app", 0), ("app", 1)], Query(pattern="-00000123 "))) == 1


def test_readers_holding_the_old_segment_finish_on_its_bytes(tmp_path: Path) -> None:
    with Store(tmp_path, compaction_settings=FAST) as store:
        store.create_topic("app", TopicConfig(segment_bytes=64 << 10))
        for k in range(40):  # text that compresses better at 9 than at 3: every file is replaced
            lines = [
                f"GET /a/{n % 37}/{k} HTTP/1.1 200 {n * 7 % 1000} ua={n % 5}" for n in range(400)
            ]
            store.append(
                "app", 0, wb.build([Record(ts=T0 + n, line=x) for n, x in enumerate(lines)])
            )
        part = store.partition("app", 0)
        refs = list(part.refs())  # planned before compaction: old segments, old positions
        expected = [r.load().records() for r in refs]
        inodes = {r.segment.path: r.segment.path.stat().st_ino for r in refs}
        store.compact("app")
        sealed = [p for p in inodes if p != part.segments[-1].path]
        assert sealed and all(p.stat().st_ino != inodes[p] for p in sealed)  # files replaced
        assert [r.load().records() for r in refs] == expected
        assert all(not r.segment.filters for r in refs[:2])  # still the old segment objects
        flat = [rec for batch in expected for rec in batch]
        assert [rec for r in part.refs() for rec in r.load().records()] == flat  # merged


def test_retention_deletes_compacted_segments_whole(tmp_path: Path) -> None:
    config = TopicConfig(partitions=1, segment_bytes=64 << 10, retention_bytes=150 << 10)
    with Store(tmp_path, compaction_settings=FAST) as store:
        store.create_topic("app", config)
        for i in range(BATCHES):
            store.append("app", 0, numbered(i * 200, 200))
        store.compact("app")
        start = store.partition("app", 0).start_offset
        assert store.enforce_retention() > 0
        assert store.partition("app", 0).start_offset > start
        bases = {p.stem for p in (tmp_path / "topics/app/0").iterdir()}
        for stem in bases:  # no .tok, .idx or .hwm outlives its segment
            assert (tmp_path / "topics/app/0" / f"{stem}.seg").exists(), stem


def test_the_background_thread_compacts_what_is_sealed(tmp_path: Path) -> None:
    settings = CompactionSettings(enabled=True, level=9, cpu_share=1.0, check_s=0.05)
    with Store(tmp_path, compaction_settings=settings) as store:
        _fill(store)
        before = _everything(store)
        sealed = sum(len(p.segments) - 1 for p in store.partitions("app"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = store.describe("app").partitions
            if sum(p.compaction.segments for p in info if p.compaction) == sealed:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"background compaction did not reach {sealed} segments in 30 s")
        assert _everything(store) == before


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.text(alphabet="aAkK\u212a_09 =-.é\n", max_size=16), min_size=1, max_size=60),
    st.text(alphabet="aAkK\u212a_09 =-.é", min_size=1, max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_grep_with_filters_returns_what_grep_without_them_returns(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[str],
    pattern: str,
    fixed: bool,
    icase: bool,
) -> None:
    """The issue's property: filters on or off (the setting), the same hits, on compacted data."""
    data = tmp_path_factory.mktemp("grep")
    recs = [Record(ts=T0 + i, line=line) for i, line in enumerate(lines)]
    query = Query(pattern=pattern, fixed=fixed, ignore_case=icase)
    answers = []
    with Store(data, compaction_settings=FAST) as store:
        store.create_topic("t", TopicConfig(segment_bytes=64 << 10))
        for k in range(0, len(recs), 7):  # batches of 7: many filters, most tiny
            store.append("t", 0, wb.build(recs[k : k + 7]))
        store.compact("t")
    for use in (True, False):  # (the alphabet has no regex syntax that can fail to compile)
        with Store(data, compaction_settings=CompactionSettings(enabled=False, filters=use)) as s:
            hits = [(h.offset, h.record.line) for h in s.partition("t", 0).scan(query)]
            answers.append((hits, s.count([("t", 0)], query)))
    assert answers[0] == answers[1]


def test_merge_joins_one_producers_batches_and_refuses_two() -> None:
    a, b = bytes(16), bytes(range(16))
    one = wb.Batch(numbered(0, 10, file_id="x"))
    two = wb.Batch(numbered(10, 10, file_id="x"))
    merged = wb.Batch(wb.merge([one, two], 19))
    assert merged.records() == one.records() + two.records()
    assert merged.spans == [wb.Span("x", 0, 20 * 60)]  # adjacent spans joined
    assert merged.header.producer_id == a
    other = wb.Batch(wb.build([Record(ts=T0, line="x")], producer_id=b))
    with pytest.raises(InvalidArgument, match="one producer"):
        wb.merge([one, other], 19)
    again = wb.Batch(wb.recompress(one, 19))
    assert again.records() == one.records() and again.spans == one.spans
    assert again.header.record_count == one.header.record_count
