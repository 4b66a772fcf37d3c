"""Child for the compaction crash tests: append numbered batches as fast as acks come back,
while the background compactor rewrites each segment the appends seal; print each ack.

Usage: python -m tests.storage.compaction_ingest_child DATA_DIR

Record ``n`` is line ``n`` of one file of one producer and always lands at offset ``n`` (the
child continues from the store's end offset), so the parent can check every record and
resend any batch. Prints ``<base_offset> <first n> <record count>`` per ack.
"""

from __future__ import annotations

import sys
import uuid
from collections import deque
from concurrent.futures import Future
from hashlib import sha256

from collector.storage import AppendResult, Store, TopicConfig
from collector.storage.compaction import CompactionSettings
from wharf import batch as wb
from wharf.record import Record

TOPIC = "ingest"
PRODUCER = uuid.UUID(int=99).bytes
FILE_ID = "app.log"
WIDTH = 64  # bytes per line in the pretend source file
PER_BATCH = 50
WINDOW = 8
# Compact what is sealed every few milliseconds, unpaced, at a level that makes every
# segment smaller than batches written at zstd 1 (so the segment files themselves are
# swapped, not only filters added).
SETTINGS = CompactionSettings(enabled=True, level=6, cpu_share=1.0, check_s=0.005)


def line(n: int) -> str:
    """Line ``n``: its number first, then text that compresses well, and a hash."""
    return f"rec-{n:08d} GET /api/items/{n % 100} 200 {sha256(b'%d' % n).hexdigest()[:8]}"


def batch(first: int, count: int = PER_BATCH) -> bytes:
    """Records ``first .. first+count-1``, spans ``[first*WIDTH, (first+count)*WIDTH)``."""
    records = [
        Record(
            ts=1_700_000_000_000_000_000 + n * 1_000_000,
            line=line(n),
            host="h",
            source="/var/log/app.log",
            file_id=FILE_ID,
            offset=n * WIDTH,
        )
        for n in range(first, first + count)
    ]
    span = wb.Span(FILE_ID, first * WIDTH, (first + count) * WIDTH)
    return wb.build(records, producer_id=PRODUCER, producer_seq=first, spans=[span], level=1)


def main(data_dir: str) -> None:
    store = Store(data_dir, fsync="always", compaction_settings=SETTINGS)
    if TOPIC not in store.topics():
        store.create_topic(TOPIC, TopicConfig(segment_bytes=64 * 1024))
    n = store.partition(TOPIC, 0).end_offset
    out = sys.stdout
    inflight: deque[tuple[int, Future[AppendResult]]] = deque()
    while True:
        inflight.append((n, store.submit(TOPIC, 0, batch(n))))
        n += PER_BATCH
        if len(inflight) >= WINDOW:
            start, fut = inflight.popleft()
            res = fut.result()
            out.write(f"{res.base_offset} {start} {res.record_count}\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
