"""Child for the crash test: append numbered batches as fast as possible, print each ack.

Usage: python -m tests.storage.crash_child DATA_DIR. Record ``n`` always lands at offset ``n``
(the child continues from the store's end offset), so the parent can check every byte.
"""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import Future

from collector.storage import AppendResult, Store, TopicConfig
from tests.storage.helpers import numbered

PER_BATCH = 50
WINDOW = 8


def main(data_dir: str) -> None:
    store = Store(data_dir, fsync="always")
    store.ensure_topic("crash") if store.topics() else store.create_topic(
        "crash", TopicConfig(segment_bytes=64 * 1024)
    )
    n = store.partition("crash", 0).end_offset
    out = sys.stdout
    inflight: deque[tuple[int, Future[AppendResult]]] = deque()
    while True:
        inflight.append((n, store.submit("crash", 0, numbered(n, PER_BATCH, file_id=f"f{n}"))))
        n += PER_BATCH
        if len(inflight) >= WINDOW:
            start, fut = inflight.popleft()
            res = fut.result()
            out.write(f"{res.base_offset} {start} {res.record_count}\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
