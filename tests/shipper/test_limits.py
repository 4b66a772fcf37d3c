"""Resource bounds: a 50 MB line without a newline, and 10,000 files (descriptors, idle CPU).

These measure the child process through /proc; the bounds are loose on purpose (resource
ceilings, not speed): they fail only when memory or descriptors grow with the input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.harness import (
    CollectorProcess,
    ShipperProcess,
    status_of,
    wait_caught_up,
    wait_for,
    write_shipper_config,
)
from tests.shipper.helpers import (
    assert_exactly_once,
    line,
    numbers,
    proc_cpu_ticks,
    proc_fds,
    proc_rss_peak_kb,
    scene,
)


def _rss_kb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_50mb_line_without_newline_keeps_memory_bounded(tmp_path: Path) -> None:
    """50 MB without a newline, then numbered lines: the line is cut at max_line_bytes
    (1 MiB) and counted, the later lines are shipped, and the shipper's peak RSS grows by far
    less than the line (holding it would add 50 MB, decoding it another 50)."""
    s = scene(tmp_path, [{"paths": ["*.log"], "topic": "big"}], partial_line_timeout_s=10.0)
    state, col = s.state, s.col
    log = s.logs / "a.log"
    log.write_bytes(b"".join(line(i) for i in range(100)))
    sh = s.shipper.start()
    try:
        wait_caught_up(state)
        base = _rss_kb(sh.pid)
        with log.open("ab") as f:
            block = b"y" * (1 << 20)
            for _ in range(50):
                f.write(block)
            f.write(b"\n" + b"".join(line(i) for i in range(100, 1100)))
        wait_caught_up(state)
        peak = proc_rss_peak_kb(sh.pid)
        st = status_of(state)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    grew_mb = (peak - base) / 1024
    print(
        f"\n50 MB line: RSS before {base / 1024:.1f} MB, peak {peak / 1024:.1f} MB, "
        f"growth {grew_mb:.1f} MB"
    )
    assert grew_mb < 30, f"peak RSS grew by {grew_mb:.1f} MB for a 50 MB line"
    assert st["counters"]["truncated_lines"] == 1
    lines = col.lines("big")
    big = [s for s in lines if s.startswith("y")]
    assert len(big) == 1 and len(big[0]) == 1 << 20
    assert_exactly_once(numbers(lines), range(1100))


@pytest.mark.slow
def test_10000_files_bounded_descriptors_and_idle_cpu(tmp_path: Path) -> None:
    """10,000 matching files with max_open_files = 200: the open descriptors stay bounded the
    whole time, every file's line is shipped once, and once idle the shipper uses next to no
    CPU (inotify plus a rescan every 10 s; no per-file polling)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    n_files = 10_000
    for k in range(n_files):
        (logs / f"f{k:05d}.log").write_bytes(line(k))
    col = CollectorProcess(tmp_path / "data").start()
    state = tmp_path / "state"
    cfg = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=state,
        collectors=[col.address],
        inputs=[{"paths": [str(logs / "*.log")], "topic": "many"}],
        max_open_files=200,
        rescan_interval_s=10.0,
        status_interval_s=1.0,
    )
    sh = ShipperProcess(cfg, tmp_path / "shipper.log").start(wait_ready=False)
    max_fds = 0
    try:
        wait_for(lambda: sh.exited() or "shipper ready" in sh.output(), 120, "start")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            max_fds = max(max_fds, proc_fds(sh.pid))
            st = status_of(state)
            if st.get("followed_files") == n_files and st["counters"]["records_acked"] >= n_files:
                break
            time.sleep(0.05)
        wait_caught_up(state, timeout=60, min_files=n_files)
        max_fds = max(max_fds, proc_fds(sh.pid))
        time.sleep(2.0)  # let the last checkpoint and status writes finish
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), proc_cpu_ticks(sh.pid)
        time.sleep(8.0)
        cpu = (proc_cpu_ticks(sh.pid) - c0) / hz / (time.monotonic() - t0)
        fds_idle = proc_fds(sh.pid)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    print(
        f"\n10,000 files: max open descriptors {max_fds}, idle {fds_idle}, "
        f"idle CPU {cpu * 100:.2f}%"
    )
    assert max_fds <= 200 + 40, max_fds
    assert cpu < 0.05, f"idle CPU {cpu * 100:.1f}%"
    assert_exactly_once(numbers(col.lines("many")), range(n_files))
