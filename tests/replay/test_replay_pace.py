"""``--speed`` and ``--rate`` against a real collector, watching lines arrive on the child's
stdout. Spacing is asserted loosely (0.5x to 3x of what is asked), never exactly."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time

from collector.storage import Store, TopicConfig
from tests.harness import LiveServer
from tests.replay.helpers import load_topic, make_records, spawn, wharf
from wharf import batch as wb


def arrivals(url: str, *args: str, count: int) -> list[tuple[float, dict[str, object]]]:
    """``(monotonic time, record)`` for each stdout line of ``wharf replay``."""
    proc = spawn(url, "replay", *args)
    assert proc.stdout is not None
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    out = proc.stdout

    def read() -> None:
        for line in out:
            lines.put((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    got = []
    try:
        for _ in range(count):
            at, line = lines.get(timeout=30)
            got.append((at, json.loads(line)))
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
        reader.join(10)
    return got


def test_speed_10_on_records_10s_apart_takes_about_1s_each(
    store: Store, server: LiveServer
) -> None:
    store.create_topic("slow", TopicConfig(partitions=1))
    store.append("slow", 0, wb.build(make_records("web-1", 4, step_s=10)))
    got = arrivals(server.url, "-t", "slow", "--speed", "10", count=4)
    assert [r["offset"] for _, r in got] == [0, 1, 2, 3]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(got)]
    for gap in gaps:
        assert 0.5 <= gap <= 3.0, gaps
    total = got[-1][0] - got[0][0]
    assert 1.5 <= total <= 9.0, total


def test_speed_merges_partitions_by_time(store: Store, server: LiveServer) -> None:
    # Two hosts, interleaved in time 5 s apart: a 10x replay goes back and forth between
    # partitions every ~0.5 s.
    store.create_topic("two", TopicConfig(partitions=3))
    a = make_records("web-1", 3, step_s=10)
    b = make_records("web-2", 3, step_s=10, start=a[0].ts + 5_000_000_000)
    store.append("two", 1, wb.build(a))
    store.append("two", 0, wb.build(b))
    got = arrivals(server.url, "-t", "two", "--speed", "10", count=6)
    assert [r["host"] for _, r in got] == ["web-1", "web-2"] * 3
    total = got[-1][0] - got[0][0]
    assert 1.25 <= total <= 7.5, total


def test_speed_cuts_long_gaps_to_max_gap(store: Store, server: LiveServer) -> None:
    store.create_topic("gap", TopicConfig(partitions=1))
    store.append("gap", 0, wb.build(make_records("web-1", 3, step_s=3600)))  # an hour apart
    started = time.monotonic()
    done = wharf(server.url, "replay", "-t", "gap", "--speed", "10", "--max-gap", "0.3s", "-q")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert elapsed < 20  # 720 s at 10x without the cap; about 0.6 s with it


def test_rate_caps_records_per_second(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 10)  # 30 records
    started = time.monotonic()
    done = wharf(server.url, "replay", "-t", "app", "--rate", "20/s", "-q")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 30
    # 28 records beyond the burst of 2 at 20/s: 1.4 s (plus start-up, loosely bounded)
    assert 0.7 <= elapsed <= 10, elapsed
