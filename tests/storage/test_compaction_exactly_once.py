"""Exactly-once across compaction (issue 17): a producer resending batches that were compacted
since (recompressed, merged with their neighbours) gets duplicate acks and nothing is stored
twice; also after a restart, when the marks come from ``.hwm`` snapshots or, without them, from
the headers of the compacted batches; and end to end, a real shipper resuming from an old
checkpoint against a real collector that compacted and restarted in between."""

from __future__ import annotations

import collections
import json
import shutil
import urllib.request
import uuid
from hashlib import sha256
from pathlib import Path

from collector.storage import Store, TopicConfig
from collector.storage.compaction import CompactionSettings
from tests.harness import (
    CollectorProcess,
    LiveServer,
    ShipperProcess,
    status_of,
    wait_caught_up,
)
from tests.harness import write_shipper_config as shipper_config
from tests.shipper.helpers import assert_exactly_once, numbers
from wharf import batch as wb
from wharf.record import Record

TOPIC = "x"
WIDTH = 100  # bytes per line in the pretend source files
PER_BATCH = 100
PRODUCERS = (uuid.UUID(int=1).bytes, uuid.UUID(int=2).bytes)
# (producer, file) streams, interleaved batch by batch: the same file id under two producers
# is two streams, and one producer's consecutive batches (two files) may be merged.
STREAMS = ((PRODUCERS[0], "a.log"), (PRODUCERS[0], "b.log"), (PRODUCERS[1], "a.log"))
SETTINGS = CompactionSettings(enabled=False, level=9)  # fast; the level changes nothing here


def _batch(stream: int, first: int, count: int) -> bytes:
    """Records ``first .. first+count-1`` of ``stream``: record ``i`` is line ``i`` of its
    file (bytes ``[i*WIDTH, (i+1)*WIDTH)``); built at zstd 1 so compaction rewrites it."""
    producer, file_id = STREAMS[stream]
    records = [
        Record(
            ts=1_700_000_000_000_000_000 + i * 1_000_000,
            line=f"s={stream} i={i:07d} id={sha256(b'%d' % i).hexdigest()[:12]} "
            f"GET /api/v1/items?page={i % 50} HTTP/1.1 200 {i % 997}",
            host="h",
            source=f"/var/log/{file_id}",
            file_id=file_id,
            offset=i * WIDTH,
        )
        for i in range(first, first + count)
    ]
    span = wb.Span(file_id, first * WIDTH, (first + count) * WIDTH)
    return wb.build(records, producer_id=producer, producer_seq=first, spans=[span], level=1)


def _stored(store: Store) -> list[tuple[int, int]]:
    """(stream, line number) of every stored record, in offset order; offsets contiguous."""
    part = store.partition(TOPIC, 0)
    out: list[tuple[int, int]] = []
    expected = 0
    for b in part.read(0, max_bytes=1 << 40):
        assert b.header.base_offset == expected, "offsets are contiguous"
        expected = b.header.next_offset
        for r in b.records():
            stream = STREAMS.index((b.header.producer_id, r.file_id))
            assert r.line.startswith(f"s={stream} i={r.offset // WIDTH:07d} "), r
            out.append((stream, r.offset // WIDTH))
    assert expected == part.end_offset
    return out


def _resend_all(store: Store, sent: list[bytes], why: str) -> None:
    end = store.partition(TOPIC, 0).end_offset
    for k, data in enumerate(sent):
        res = store.append(TOPIC, 0, data)
        assert res.duplicate and (res.base_offset, res.record_count) == (-1, 0), f"{why}: {k}"
    assert store.partition(TOPIC, 0).end_offset == end, f"{why}: a resend was stored"


def _compacted(store: Store) -> list[bool]:
    return [s.filters is not None for s in store.partition(TOPIC, 0).segments[:-1]]


def test_resends_of_compacted_batches_are_duplicates(tmp_path: Path) -> None:
    """Three (producer, file) streams; after ``Store.compact`` every batch sent again is a
    duplicate (nothing stored, the end offset unchanged), a batch straddling the marks stores
    only its new half; the same after a restart (marks from the ``.hwm`` snapshot), after a
    second compaction, and after a restart with every snapshot deleted (marks replayed from the
    compacted batches). Every record is stored once."""
    sent: list[bytes] = []
    pos = [0] * len(STREAMS)
    with Store(tmp_path, compaction_settings=SETTINGS) as store:
        store.create_topic(TOPIC, TopicConfig(partitions=1, segment_bytes=64 * 1024))
        for k in range(150):
            s = k % len(STREAMS)
            sent.append(_batch(s, pos[s], PER_BATCH))
            assert not store.append(TOPIC, 0, sent[-1]).duplicate
            pos[s] += PER_BATCH
        end = store.partition(TOPIC, 0).end_offset
        before = _stored(store)
        result = store.compact(TOPIC)
        assert not result.errors and result.segments >= 4, result
        assert result.bytes_after < result.bytes_before, result
        assert all(_compacted(store)), "every sealed segment is compacted"
        assert _stored(store) == before, "compaction changes no record and no offset"

        _resend_all(store, sent, "resent after compaction")
        # A resend straddling the marks: only the records past them are stored, once.
        straddling = _batch(0, pos[0] - 50, PER_BATCH)
        res = store.append(TOPIC, 0, straddling)
        assert (res.duplicate, res.base_offset, res.record_count) == (False, end, 50), res
        sent += [straddling, _batch(0, pos[0], 50)]  # both are resends from now on
        pos[0] += 50

    # Reopened: the marks come from the newest .hwm snapshot and the batches after it.
    with Store(tmp_path, compaction_settings=SETTINGS) as store:
        _resend_all(store, sent, "resent after a restart")
        # Compact again (the straddling batch's segment too), then resend.
        assert not store.compact(TOPIC).errors
        assert all(_compacted(store))
        _resend_all(store, sent, "resent after a second compaction")

    # Without any snapshot the marks are rebuilt from the compacted batches' headers alone.
    snapshots = sorted((tmp_path / "topics" / TOPIC / "0").glob("*.hwm"))
    assert snapshots
    for snap in snapshots:
        snap.unlink()
    with Store(tmp_path) as store:
        assert all(_compacted(store))
        _resend_all(store, sent, "resent after a restart without snapshots")
        new = store.append(TOPIC, 0, _batch(1, pos[1], 10))
        assert not new.duplicate and new.record_count == 10, "new data is still stored"
        pos[1] += 10
        stored = _stored(store)
    counts = collections.Counter(stored)
    assert not [k for k, c in counts.items() if c > 1], "nothing is stored twice"
    expected = {(s, i) for s in range(len(STREAMS)) for i in range(pos[s])}
    assert set(counts) == expected, "every record is stored"


def test_marks_survive_compaction_of_a_segment_whose_snapshot_is_older(tmp_path: Path) -> None:
    """The snapshot a restart starts from is older than what follows it: the batches after it
    are read from compacted (merged) segments, and their spans still carry every mark."""
    with Store(tmp_path, compaction_settings=SETTINGS) as store:
        store.create_topic(TOPIC, TopicConfig(partitions=1, segment_bytes=64 * 1024))
        # One producer, two files, batch by batch: merged batches carry spans of both.
        sent = [_batch(k % 2, k // 2 * PER_BATCH, PER_BATCH) for k in range(150)]
        for data in sent:
            store.append(TOPIC, 0, data)
        assert not store.compact(TOPIC).errors
    snapshots = sorted((tmp_path / "topics" / TOPIC / "0").glob("*.hwm"))
    assert len(snapshots) >= 3
    for snap in snapshots[1:]:  # only the oldest snapshot is left
        snap.unlink()
    with Store(tmp_path) as store:
        _resend_all(store, sent, "resent with the oldest snapshot only")
        stored = _stored(store)
    assert sorted(stored) == [(s, i) for s in (0, 1) for i in range(75 * PER_BATCH)]


def _lines(first: int, last: int) -> bytes:
    """Numbered lines ``first .. last-1`` (``n=<n>``, what ``numbers`` finds), each with a hash
    that keeps them from compressing to nothing: several segments of 64 KiB."""
    return b"".join(
        b"n=%09d id=%s GET /static/app.js 200\n" % (n, sha256(b"%d" % n).hexdigest()[:16].encode())
        for n in range(first, last)
    )


def test_a_shipper_resending_compacted_lines_stores_each_line_once(tmp_path: Path) -> None:
    """A real shipper whose checkpoint is put back to an earlier one (a restore from backup)
    re-sends lines the collector has compacted since, across a collector restart: they are
    acknowledged as duplicates, and every line is stored once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    config = tmp_path / "collector.toml"
    config.write_text("[compaction]\nenabled = false\nlevel = 9\n")
    col = CollectorProcess(tmp_path / "data", fixed_ports=True, args=["--config", str(config)])
    col.start()
    made = col.wharf("topics", "create", "ship", "--segment-bytes", str(64 * 1024))
    assert made.returncode == 0, made.stderr
    sh_config = shipper_config(
        tmp_path / "shipper.toml",
        state_dir=state,
        collectors=[col.address],
        inputs=[{"paths": [str(logs / "*.log")], "topic": "ship"}],
        batch_bytes=64 * 1024,
    )
    sh = ShipperProcess(sh_config, tmp_path / "shipper.log")
    log = logs / "app.log"
    try:
        with log.open("ab") as f:
            f.write(_lines(0, 5000))
        sh.start()
        wait_caught_up(state)
        assert sh.term() == 0
        shutil.copy(state / "checkpoints.json", tmp_path / "early-checkpoints.json")

        with log.open("ab") as f:
            f.write(_lines(5000, 20000))
        sh.start()
        wait_caught_up(state)
        assert sh.term() == 0

        done = col.wharf("topics", "compact", "ship", "-o", "json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["segments"] >= 2 and not result["errors"], result
        col.kill()  # the marks of the restarted collector come from the files
        col.restart()

        shutil.copy(tmp_path / "early-checkpoints.json", state / "checkpoints.json")
        with log.open("ab") as f:
            f.write(_lines(20000, 21000))
        sh.start()
        wait_caught_up(state)
        counters = status_of(state)["counters"]
        # Lines 5000.. were read and sent again: the collector stored only the 1000 new ones.
        assert counters["lines_read"] >= 16000, counters
        assert counters["duplicate_batches"] > 0 and counters["records_acked"] == 1000, counters
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(numbers(col.lines("ship")), range(21000))


def _consume(url: str, offset: int) -> tuple[list[tuple[int, str]], int]:
    """One page of ``GET .../records`` from ``offset``, one stored batch at most: the (offset,
    line) rows and the next offset."""
    query = f"{url}/v1/topics/{TOPIC}/partitions/0/records?offset={offset}&max_bytes=1"
    with urllib.request.urlopen(query, timeout=30) as resp:
        rows = [json.loads(row) for row in resp.read().splitlines()]
    end = rows.pop()
    return [(r["offset"], r["line"]) for r in rows], int(end["next_offset"])


def test_a_consumer_paging_across_a_compaction_reads_each_record_once(tmp_path: Path) -> None:
    """A consumer reading page by page, by offset, while the batches under it are compacted
    (merged): it goes on from its next offset, now inside a bigger batch, and reads every
    record once, in order."""
    with Store(tmp_path, compaction_settings=SETTINGS) as store, LiveServer(store) as srv:
        store.create_topic(TOPIC, TopicConfig(partitions=1, segment_bytes=64 * 1024))
        sent = [_batch(k % 2, k // 2 * PER_BATCH, PER_BATCH) for k in range(60)]
        for data in sent:
            store.append(TOPIC, 0, data)
        expected = [
            (o, r.line)
            for o, r in enumerate(
                r for b in store.partition(TOPIC, 0).read(0, 1 << 40) for r in b.records()
            )
        ]
        seen: list[tuple[int, str]] = []
        offset = 0
        for _ in range(7):  # seven batches' worth, then compaction merges them under us
            rows, offset = _consume(srv.url, offset)
            seen += rows
        assert offset == 7 * PER_BATCH
        result = store.compact(TOPIC)
        assert not result.errors and result.batches > result.segments, result
        merged = store.partition(TOPIC, 0).read(offset, max_bytes=1)[0].header
        # The premise: compaction merged the batches (``block_bytes``), so the consumer's next
        # offset is no longer where a batch starts.
        assert merged.base_offset < offset, "the next offset is inside a merged batch now"
        for _ in range(len(sent)):
            if offset == store.partition(TOPIC, 0).end_offset:
                break
            rows, offset = _consume(srv.url, offset)
            seen += rows
        _resend_all(store, sent, "resent after the consumer read it all")
    assert seen == expected
