"""The collector is away while files rotate and get deleted: the spool takes the batches,
and nothing is lost or doubled once it is back, even across a SIGKILL of the shipper."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.harness import status_of, wait_caught_up, wait_for
from tests.shipper.helpers import assert_exactly_once, line, numbers, scene

OUTAGE_S = 12.0


@pytest.mark.slow
def test_collector_down_while_rotating_and_deleting_spools_then_no_loss(tmp_path: Path) -> None:
    """The issue asks for a 2-minute outage; this one lasts 12 s with the same logic: a small
    ``memory_queue_bytes`` (64 KiB) makes the spool take over within the first second instead
    of after 32 MiB, and ``reconnect_backoff_s`` caps retries at 0.5 s instead of 5 s so the
    test notices the collector's return quickly. Nothing else differs from production: files
    are renamed away and deleted while the collector is down, the shipper is SIGKILLed once
    mid-outage (the spool survives it), and after the collector returns every number is
    stored exactly once."""
    s = scene(
        tmp_path,
        [{"paths": ["*.log"], "topic": "out"}],
        fixed_ports=True,  # the collector comes back where the running shipper expects it
        memory_queue_bytes=16 << 10,
        batch_bytes=64 << 10,
    )
    logs, state, col, sh = s.logs, s.state, s.col, s.shipper.start()
    stop = threading.Event()
    count = [0]

    def writer() -> None:
        live = logs / "app.log"
        f = live.open("ab")
        n, rot = 0, 0
        while not stop.is_set():
            f.write(b"".join(line(i) for i in range(n, n + 100)))
            f.flush()
            n += 100
            count[0] = n
            if n % 15_000 == 0:
                f.close()
                rot += 1
                os.rename(live, logs / f"app.log.{rot}")
                if rot >= 2:  # the rotation before last goes away, like logrotate's rotate 1
                    (logs / f"app.log.{rot - 1}").unlink()
                f = live.open("ab")
            time.sleep(0.02)
        f.close()

    other = logs / "short-lived.log"
    other.write_bytes(b"".join(line(i) for i in range(1_000_000, 1_002_000)))
    wait_caught_up(state)
    col.stop()
    down_at = time.monotonic()
    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(1.0)
        with other.open("ab") as f:
            f.write(b"".join(line(i) for i in range(1_002_000, 1_003_000)))
        time.sleep(0.5)
        other.unlink()  # deleted while the collector is away: its last lines live in the spool
        wait_for(lambda: status_of(state).get("spool_bytes", 0) > 0, 10, "spooling")
        time.sleep(max(0.0, OUTAGE_S / 2 - (time.monotonic() - down_at)))
        sh.kill()
        sh.start()
        assert "replaying" in sh.output()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        spooled = status_of(state)["spool_bytes"]

        stop.set()
        t.join(10)
        col.start()
        wait_caught_up(state, timeout=90)
        st = status_of(state)
        assert sh.term() == 0
    finally:
        stop.set()
        sh.close()
        col.stop()
    assert spooled > 0
    assert sum(st["drops"].values()) == 0, st["drops"]
    assert not list((state / "spool").glob("*.wsp")), "the spool drains once acknowledged"
    assert_exactly_once(numbers(col.lines("out")), [*range(count[0]), *range(1_000_000, 1_003_000)])
