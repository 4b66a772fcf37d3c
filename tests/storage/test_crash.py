"""Crash safety with real processes: SIGKILL a writer at random moments, then check every ack."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.storage import Store
from tests.storage.helpers import numbered
from wharf import batch as wb

ROOT = Path(__file__).resolve().parents[2]
KILLS = 25


def _run_and_kill(data_dir: Path, rng: random.Random) -> list[tuple[int, int, int]]:
    """Start the child, let it ack for a random while, SIGKILL it; return the acks it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_child", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acks: list[tuple[int, int, int]] = []
    buf = b""
    deadline = None
    hard_stop = time.monotonic() + 30
    fd = proc.stdout.fileno()
    while time.monotonic() < hard_stop:
        if deadline is not None and time.monotonic() >= deadline:
            break
        ready, _, _ = select.select([fd], [], [], 0.01)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            acks += [tuple(map(int, line.split())) for line in lines]  # type: ignore[misc]
            if acks and deadline is None:  # running: kill at a random moment from now on
                deadline = time.monotonic() + rng.uniform(0.0, 0.4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Acks already in the pipe when the child died were acknowledged too: read them.
    rest = buf + proc.stdout.read()
    acks += [tuple(map(int, line.split())) for line in rest.split(b"\n") if line.strip()]  # type: ignore[misc]
    proc.stdout.close()
    return acks


@pytest.mark.slow
def test_every_acknowledged_record_survives_sigkill(tmp_path: Path) -> None:
    rng = random.Random(20261126)
    acked_end = 0
    total_acks = 0
    for _ in range(KILLS):
        acks = _run_and_kill(tmp_path, rng)
        total_acks += len(acks)
        for base, start, count in acks:
            assert (base, count) == (start, 50), "record n is stored at offset n, once"
            acked_end = max(acked_end, base + count)
        with Store(tmp_path) as store:
            part = store.partition("crash", 0)
            end = part.end_offset
            assert end >= acked_end, f"acknowledged up to {acked_end}, store ends at {end}"
            expected_offset = 0
            for b in part.read(0, max_bytes=1 << 40):  # every batch, checksums verified
                h = b.header
                assert h.base_offset == expected_offset, "offsets are contiguous"
                # Byte for byte what the child built for these numbers.
                built = wb.with_offset(
                    numbered(h.base_offset, h.record_count, file_id=f"f{h.base_offset}"),
                    h.base_offset,
                    h.append_ms,
                )
                assert b.raw == built
                expected_offset = h.next_offset
            assert expected_offset == end
    assert total_acks > KILLS, "the child acknowledged batches between kills"
