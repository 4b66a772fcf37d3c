"""Kill -9 the collector at random moments while a client streams numbered records; the
client resends what was not acknowledged; afterwards every number is stored exactly once."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import pytest

from collector.storage import Store
from shipper.transport import Producer
from tests.harness import CollectorProcess
from wharf import batch as wb
from wharf.record import Record

ROOT = Path(__file__).resolve().parents[2]
KILLS = 12
PER_BATCH = 50
WIDTH = 40  # bytes per line in the pretend source file: record n covers [n*WIDTH, (n+1)*WIDTH)


def _batch(k: int) -> bytes:
    first = k * PER_BATCH
    records = [
        Record(ts=n, line=f"n={n}", host="h", file_id="app.log", offset=n * WIDTH)
        for n in range(first, first + PER_BATCH)
    ]
    return wb.build(
        records,
        producer_id=PRODUCER,
        spans=[wb.Span("app.log", first * WIDTH, (first + PER_BATCH) * WIDTH)],
    )


PRODUCER = uuid.UUID(int=42).bytes


@pytest.mark.slow
def test_every_number_exactly_once_across_sigkills(tmp_path: Path) -> None:
    # fixed ports: the producer keeps one address and must find each new process there
    collector = CollectorProcess(tmp_path, fixed_ports=True).start()
    rng = random.Random(7)
    kills = 0
    sent = 0

    async def stream() -> None:
        nonlocal kills, sent
        producer = Producer(
            [collector.address],
            producer_id=PRODUCER,
            window=8,
            backoff_s=(0.02, 0.3),
            connect_timeout_s=2,
        )
        pending: set[asyncio.Task[object]] = set()
        next_kill = time.monotonic() + rng.uniform(0.2, 1.0)
        while kills < KILLS or sent < 200:
            pending.add(asyncio.create_task(producer.send("crash", _batch(sent))))
            sent += 1
            if len(pending) >= 8:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
            if kills < KILLS and time.monotonic() >= next_kill:
                collector.kill()
                kills += 1
                await asyncio.to_thread(collector.restart)
                next_kill = time.monotonic() + rng.uniform(0.2, 1.0)
        for t in pending:
            await asyncio.wait_for(t, 60)
        await producer.close()

    try:
        asyncio.run(asyncio.wait_for(stream(), 240))
    finally:
        assert collector.stop() == 0, "SIGTERM drains and exits 0"
    assert kills == KILLS
    with Store(tmp_path) as store:
        part = store.partition("crash", 0)
        numbers = [int(r.line[2:]) for b in part.read(0, 1 << 40) for r in b.records()]
    assert len(numbers) == len(set(numbers)), "no number stored twice"
    assert sorted(numbers) == list(range(sent * PER_BATCH)), "no number missing"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def test_scan_worker_processes_die_with_a_sigkilled_collector(tmp_path: Path) -> None:
    """The collector's counting workers (a forkserver and one process per core) leave with it,
    even when it is SIGKILLed and never gets to stop them."""
    config = tmp_path / "collector.toml"
    config.write_text("[search]\nprocesses = 2\n")  # whatever this machine's core count
    collector = CollectorProcess(tmp_path / "data", args=["--config", str(config)]).start()
    try:
        deadline = time.monotonic() + 30
        helpers: set[int] = set()
        while time.monotonic() < deadline and len(helpers) < 3:  # forkserver + 2 workers
            helpers = _descendants(collector.pid)
            time.sleep(0.1)
        assert len(helpers) >= 3, helpers
    finally:
        collector.kill()
    deadline = time.monotonic() + 15
    while _alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(helpers), f"left behind: {_alive(helpers)}"
