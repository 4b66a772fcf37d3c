"""Kill -9 the collector at random moments while a client streams numbered records; the
client resends what was not acknowledged; afterwards every number is stored exactly once."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from collector.storage import Store
from shipper.transport import Producer
from tests.collector.helpers import free_port
from wharf import batch as wb
from wharf.record import Record

ROOT = Path(__file__).resolve().parents[2]
KILLS = 12
PER_BATCH = 50
WIDTH = 40  # bytes per line in the pretend source file: record n covers [n*WIDTH, (n+1)*WIDTH)


def _start(data: Path, port: int, http: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wharf",
            "collector",
            "run",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
            "--http",
            f"127.0.0.1:{http}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            assert proc.poll() is None, "collector exited during start"
            time.sleep(0.05)
    raise AssertionError("collector did not start listening")


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
    port, http = free_port(), free_port()
    proc = _start(tmp_path, port, http)
    rng = random.Random(7)
    kills = 0
    sent = 0

    async def stream() -> None:
        nonlocal proc, kills, sent
        producer = Producer(
            [f"127.0.0.1:{port}"],
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
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = await asyncio.to_thread(_start, tmp_path, port, http)
                next_kill = time.monotonic() + rng.uniform(0.2, 1.0)
        for t in pending:
            await asyncio.wait_for(t, 60)
        await producer.close()

    try:
        asyncio.run(asyncio.wait_for(stream(), 240))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "SIGTERM drains and exits 0"
    assert kills == KILLS
    with Store(tmp_path) as store:
        part = store.partition("crash", 0)
        numbers = [int(r.line[2:]) for b in part.read(0, 1 << 40) for r in b.records()]
    assert len(numbers) == len(set(numbers)), "no number stored twice"
    assert sorted(numbers) == list(range(sent * PER_BATCH)), "no number missing"
