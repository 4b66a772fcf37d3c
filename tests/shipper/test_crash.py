"""SIGKILL at random moments, some aimed at the middle of a checkpoint write; damaged state
files at start-up."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from tests.harness import CollectorProcess, ShipperProcess, status_of, wait_caught_up, wait_for
from tests.shipper.helpers import assert_exactly_once, line, numbers, scene

KILLS = 22


def _bytes_exactly_once(records: list, source: str, content: bytes) -> None:
    """The records of ``source``, by offset, rebuild the file exactly (no byte twice, none
    missing): holds even where a timer cut a line in two."""
    mine = sorted((r for r in records if r.source == source), key=lambda r: r.offset)
    offsets = [r.offset for r in mine]
    assert len(offsets) == len(set(offsets)), "a record stored twice"
    assert "".join(r.line for r in mine) == content.decode().replace("\n", "")


@pytest.mark.slow
def test_sigkill_at_random_moments_and_during_checkpoint_writes(tmp_path: Path) -> None:
    """22 SIGKILLs while two writers run (one rotating by rename, one writing lines in two
    halves far enough apart that the partial-line timer cuts them); every other kill waits
    until a checkpoint write is half done (a fault-injection pause in the writer makes that
    window wide). After the last restart: every number exactly once, and the slow file's bytes
    exactly once."""
    s = scene(
        tmp_path,
        [{"paths": ["*.log"], "topic": "crash"}],
        checkpoint_interval_s=0.1,
        partial_line_timeout_s=0.3,
        linger_s=0.1,
    )
    logs, state, col, sh = s.logs, s.state, s.col, s.shipper
    os.environ["WHARF_FAULT_CHECKPOINT_PAUSE_S"] = "0.05"
    try:
        sh.start()
    finally:
        del os.environ["WHARF_FAULT_CHECKPOINT_PAUSE_S"]
    stop = threading.Event()
    count = [0]
    slow = logs / "slow.log"
    slow_n = [0]

    def fast_writer() -> None:
        live = logs / "app.log"
        f = live.open("ab")
        n = 0
        rot = 0
        while not stop.is_set():
            f.write(b"".join(line(i) for i in range(n, n + 50)))
            f.flush()
            n += 50
            count[0] = n
            if n % 20_000 == 0:
                f.close()
                rot += 1
                os.rename(live, logs / f"app.log.{rot}")
                f = live.open("ab")
            time.sleep(0.01)
        f.close()

    def slow_writer() -> None:
        with slow.open("ab") as f:
            k = 0
            while not stop.is_set():
                text = f"slow={k:06d} the first half|".encode()
                f.write(text)
                f.flush()
                time.sleep(0.45)  # past partial_line_timeout_s: the timer cuts the line here
                f.write(b"and the second half\n")
                f.flush()
                k += 1
                slow_n[0] = k

    threads = [threading.Thread(target=fast_writer), threading.Thread(target=slow_writer)]
    for t in threads:
        t.start()
    rng = random.Random(5)
    mid_write = 0
    try:
        for k in range(KILLS):
            # A random moment of a running daemon's life: a shipper killed again and again
            # during start-up is simply down, and a file created and rotated away to a name
            # outside the globs while it is down is unknowable to any shipper.
            wait_for(lambda: "shipper ready" in sh.output(), 30, "the restart")
            time.sleep(rng.uniform(0.05, 0.6))
            if k % 2:
                tmp = state / "checkpoints.json.tmp"
                deadline = time.monotonic() + 5
                while not tmp.exists() and time.monotonic() < deadline:
                    time.sleep(0.001)
                if tmp.exists():
                    mid_write += 1
            sh.kill()
            os.environ["WHARF_FAULT_CHECKPOINT_PAUSE_S"] = "0.05"
            try:
                sh.start(wait_ready=False)
            finally:
                del os.environ["WHARF_FAULT_CHECKPOINT_PAUSE_S"]
        stop.set()
        for t in threads:
            t.join(10)
        wait_for(lambda: "shipper ready" in sh.output(), 30, "the last start")
        wait_caught_up(state, timeout=90)
        assert sh.term() == 0
        assert "state lost" not in sh.output(since_start=False)
    finally:
        stop.set()
        sh.close()
        col.stop()
    assert mid_write >= KILLS // 2 - 2, f"only {mid_write} kills landed inside a checkpoint write"
    assert_exactly_once(numbers(col.lines("crash")), range(count[0]))
    assert slow_n[0] > 10
    _bytes_exactly_once(col.records("crash"), str(slow), slow.read_bytes())


def _run_once(
    tmp_path: Path, first: range, *, damage: str
) -> tuple[CollectorProcess, ShipperProcess]:
    s = scene(tmp_path, [{"paths": ["*.log"], "topic": "state"}])
    logs, state, col, sh = s.logs, s.state, s.col, s.shipper
    log = logs / "a.log"
    with log.open("ab") as f:
        f.write(b"".join(line(i) for i in first))
    sh.start()
    wait_caught_up(state)
    with log.open("ab") as f:  # a second checkpoint, so the previous copy is behind
        f.write(b"".join(line(i) for i in range(first.stop, first.stop + 100)))
    wait_caught_up(state)
    assert sh.term() == 0
    main, prev = state / "checkpoints.json", state / "checkpoints.prev"
    assert main.exists() and prev.exists()
    if damage in ("garbage", "both"):
        main.write_bytes(b"\x00\x17 not a checkpoint")
    if damage == "empty":
        main.write_bytes(b"")
    if damage == "torn":
        main.write_bytes(main.read_bytes()[: main.stat().st_size // 2])
    if damage == "both":
        prev.write_bytes(b"")
    return col, sh


@pytest.mark.parametrize("damage", ["garbage", "empty", "torn"])
def test_damaged_state_file_falls_back_to_previous_copy(tmp_path: Path, damage: str) -> None:
    """A corrupt, empty or torn state file: a clear warning naming it, then the previous
    copy; the lines after it are re-sent and the collector drops them: still exactly once."""
    col, sh = _run_once(tmp_path, range(1000), damage=damage)
    try:
        sh.start()
        out = sh.output()
        assert "checkpoints.json" in out and "previous copy" in out, out
        with (tmp_path / "logs" / "a.log").open("ab") as f:
            f.write(b"".join(line(i) for i in range(1100, 1500)))
        wait_caught_up(tmp_path / "state")
        warnings = status_of(tmp_path / "state")["warnings"]
        assert any("previous copy" in w for w in warnings)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(numbers(col.lines("state")), range(1500))


def test_no_usable_state_warns_and_does_not_reread(tmp_path: Path) -> None:
    """Both copies unusable: a loud warning, files continue from their end (no silent full
    re-read, nothing twice), and new lines are shipped."""
    col, sh = _run_once(tmp_path, range(1000), damage="both")
    try:
        sh.start()
        assert "checkpoint state lost" in sh.output()
        with (tmp_path / "logs" / "a.log").open("ab") as f:
            f.write(b"".join(line(i) for i in range(1100, 1500)))
        wait_caught_up(tmp_path / "state")
        assert any("state lost" in w for w in status_of(tmp_path / "state")["warnings"])
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(numbers(col.lines("state")), range(1500))
