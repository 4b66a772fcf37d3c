"""Rename rotation under load with SIGKILLs between rename and create; a partial last line at
shutdown, at rotation and at deletion."""

from __future__ import annotations

import gzip
import os
import threading
import time
from pathlib import Path

import pytest

from tests.harness import CollectorProcess, ShipperProcess, wait_caught_up, wait_for
from tests.shipper.helpers import assert_exactly_once, line, numbers, scene

RATE = 20_000  # lines per second
ROTATE_BYTES = 3 << 20  # "every few MB"
CHUNK = 200  # lines per write()


@pytest.mark.slow
@pytest.mark.parametrize("glob", ["app.log", "app.log*"])
def test_rename_rotation_under_load_with_sigkill_between_rename_and_create(
    tmp_path: Path, glob: str
) -> None:
    """20k lines/s, rename rotation every 3 MB; at two rotations the shipper is SIGKILLed
    after the rename and before the new file exists, then restarted. With ``app.log*`` the
    rotated files match the glob too (identity by inode keeps them from being re-read) and
    older rotations are gzipped (never read). Every number exactly once."""
    s = scene(tmp_path, [{"paths": [glob], "topic": "rot"}])
    logs, col, sh = s.logs, s.col, s.shipper
    live = logs / "app.log"
    live.touch()
    sh.start()
    total = 6 * ROTATE_BYTES // 100  # six rotations' worth of lines
    kill_at = {2, 4}  # rotation numbers at which the shipper dies mid-rotation
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            f = live.open("ab")
            written = 0
            rotation = 0
            t0 = time.monotonic()
            n = 0
            while n < total:
                f.write(b"".join(line(i) for i in range(n, min(total, n + CHUNK))))
                f.flush()
                written += CHUNK * 100
                n += CHUNK
                if written >= ROTATE_BYTES:
                    rotation += 1
                    f.close()
                    os.rename(live, logs / f"app.log.{rotation}")
                    if rotation in kill_at:
                        sh.kill()
                    if rotation >= 3 and glob == "app.log*":
                        old = logs / f"app.log.{rotation - 2}"
                        # logrotate's compress step: old.gz appears, old goes away
                        old.with_name(old.name + ".gz").write_bytes(gzip.compress(old.read_bytes()))
                        old.unlink()
                    f = live.open("ab")
                    if rotation in kill_at:
                        sh.start(wait_ready=False)
                    written = 0
                # pace to RATE
                ahead = n / RATE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            f.close()
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    t.join(120)
    assert not t.is_alive() and not errors, errors
    try:
        wait_for(lambda: "shipper ready" in sh.output(), 60, "restart")
        wait_caught_up(tmp_path / "state", timeout=90)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert sh.starts == 3
    assert_exactly_once(numbers(col.lines("rot")), range(total))


def _partial_setup(tmp_path: Path) -> tuple[CollectorProcess, Path, ShipperProcess]:
    # partial_line_timeout_s is longer than the test: only shutdown and rotation flush
    s = scene(tmp_path, [{"paths": ["*.log"], "topic": "part"}], partial_line_timeout_s=30.0)
    return s.col, s.logs, s.shipper


def test_partial_last_line_at_shutdown_is_shipped_once(tmp_path: Path) -> None:
    """SIGTERM ships the partial last line; the rest of it, written later, is shipped after
    the restart as its own record: the bytes arrive exactly once."""
    col, logs, sh = _partial_setup(tmp_path)
    log = logs / "a.log"
    log.write_bytes(b"n=000000001 whole\nn=000000002 hal")
    try:
        sh.start()
        wait_for(lambda: sh.output().count("shipper ready") == 1, 10, "start")
        time.sleep(1.0)
        assert sh.term() == 0
        with log.open("ab") as f:
            f.write(b"f done\nn=000000003 whole\n")
        sh.start()
        wait_caught_up(tmp_path / "state")
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    stored = col.lines("part")
    assert "".join(s + ("\n" if not s.endswith("hal") else "") for s in stored) == (log.read_text())
    assert stored == ["n=000000001 whole", "n=000000002 hal", "f done", "n=000000003 whole"]


def test_partial_last_line_at_rotation_and_deletion_is_shipped_once(tmp_path: Path) -> None:
    """A file renamed away with a partial last line, and a file deleted with one: both are
    read to their end and the partial line is shipped once, after the rotation grace."""
    col, logs, sh = _partial_setup(tmp_path)
    a, b = logs / "a.log", logs / "b.log"
    a.write_bytes(b"n=000000001 a\nn=000000002 a-part")
    b.write_bytes(b"n=000000003 b\nn=000000004 b-part")
    try:
        sh.start()
        time.sleep(0.5)
        os.rename(a, logs / "a.log.1")
        with (logs / "a.log.1").open("ab") as f:
            f.write(b"ial\n")  # the writer finishes its line after the rename
        b.unlink()
        wait_for(
            lambda: "finished" in sh.output() and sh.output().count("finished") >= 2,
            20,
            "both files finished",
        )
        (logs / "a.log").write_bytes(b"n=000000005 new\n")
        wait_caught_up(tmp_path / "state")
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    stored = col.lines("part")
    assert sorted(stored) == sorted(
        [
            "n=000000001 a",
            "n=000000002 a-partial",
            "n=000000003 b",
            "n=000000004 b-part",
            "n=000000005 new",
        ]
    )
