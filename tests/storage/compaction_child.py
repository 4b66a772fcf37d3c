"""Child for the compaction crash tests: open a store, compact one topic, exit.

Usage: python -m tests.storage.compaction_child DATA_DIR TOPIC LEVEL [KIND:N]

Prints ``ready`` once the store is open (compaction starts right after: the parent kills it
at a delay measured from there) and ``done <CompactResult as JSON>`` once ``Store.compact``
returned, then closes the store and exits 0.

``KIND:N`` kills this process with SIGKILL at a chosen point of the swap instead of at a
random moment, with the product code untouched: an audit hook (``sys.addaudithook``) sees each
``os.rename`` before it happens. ``tok:N``, ``idx:N``, ``seg:N``: right before the N-th
(from 0) rename of a ``<base>.<kind>.compacting`` over the segment's own file; ``dir:N``: after
the N-th ``.seg`` rename, at the next ``open`` (the directory fsync that ends the swap).
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path

import msgspec

from collector.storage import Store
from collector.storage.compaction import SUFFIX, CompactionSettings


def _kill_hook(kind: str, n: int) -> None:
    seen: Counter[str] = Counter()
    armed = False

    def hook(event: str, args: tuple[object, ...]) -> None:
        nonlocal armed
        if armed and event == "open":
            os.kill(os.getpid(), signal.SIGKILL)
        if event != "os.rename":
            return
        src, dst = str(args[0]), str(args[1])
        if not src.endswith(SUFFIX) or dst.endswith(SUFFIX):
            return  # not a swap: write_atomically's temp file becoming a *.compacting
        what = Path(src).name.split(".")[1]  # <base>.<what>.compacting
        if kind == what and seen[what] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "dir" and what == "seg" and seen[what] == n:
            armed = True
        seen[what] += 1

    sys.addaudithook(hook)


def main(data_dir: str, topic: str, level: int, kill_at: str | None) -> None:
    if kill_at is not None:
        kind, n = kill_at.split(":")
        assert kind in ("tok", "idx", "seg", "dir"), kill_at
        _kill_hook(kind, int(n))
    settings = CompactionSettings(enabled=False, level=level)
    with Store(data_dir, compaction_settings=settings) as store:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        result = store.compact(topic)
        sys.stdout.write(f"done {msgspec.json.encode(result).decode()}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
