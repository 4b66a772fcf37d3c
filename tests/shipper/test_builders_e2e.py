"""The daemon with builder processes (``builders = 1``): clf lines parsed in the child arrive
parsed as the per-line parser parses them, exactly once, across SIGKILLs of the shipper and of
its builder process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from parsers import get_parser
from tests.harness import wait_caught_up, wait_for
from tests.shipper.helpers import assert_exactly_once, numbers, scene

LINES = 60_000
CHUNK = 2_000


def _clf(n: int) -> bytes:
    if n % 997 == 0:
        return f"not an access line n={n:09d}\n".encode()  # a parse error, shipped as is
    status = (200, 304, 404, 503)[n % 4]
    return (
        f"10.0.{n % 256}.{n % 7} - - [10/Oct/2023:13:{n // 60 % 60:02d}:{n % 60:02d} +0000] "
        f'"GET /item?n={n:09d} HTTP/1.1" {status} {n % 5000} "-" "bench/1"\n'
    ).encode()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.slow
def test_builder_processes_parse_exactly_once_across_sigkills(tmp_path: Path) -> None:
    s = scene(
        tmp_path,
        [{"paths": ["*.log"], "topic": "web", "parser": "clf"}],
        builders=1,
        linger_s=0.1,
        checkpoint_interval_s=0.2,
    )
    logs, col, sh = s.logs, s.col, s.shipper
    log = logs / "access.log"
    log.touch()
    sh.start()
    try:
        written = 0
        kills = 0
        while written < LINES:
            with log.open("ab") as f:
                f.write(b"".join(_clf(n) for n in range(written, written + CHUNK)))
            written += CHUNK
            if written in (LINES // 3, 2 * LINES // 3):
                time.sleep(0.3)
                if kills == 0:
                    sh.kill()  # the shipper itself: its child sees EOF and exits
                else:
                    # the builder process: the daemon stops (exit status 2), systemd's job
                    # (here ours) is to start it again
                    wait_for(lambda: bool(_children(sh.pid)), 20, "builder process")
                    os.kill(_children(sh.pid)[0], signal.SIGKILL)
                    wait_for(sh.exited, 30, "the daemon to exit")
                    assert sh.proc is not None and sh.proc.returncode == 2, sh.output()[-2000:]
                    assert "builder process" in sh.output(), sh.output()[-2000:]
                kills += 1
                sh.start(wait_ready=False)
        wait_for(lambda: "shipper ready" in sh.output(), 60, "restart")
        wait_caught_up(tmp_path / "state", timeout=90)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    records = col.records("web")
    assert_exactly_once(numbers(r.line for r in records), range(LINES))
    parser = get_parser("clf")
    for r in records[:: max(1, len(records) // 3000)]:
        parsed = parser.parse(r.line)
        assert r.fields == parsed.fields, r.line
        if parsed.ts is not None:
            assert r.ts == parsed.ts, r.line
