"""What broke the shipper under bad luck (issue 13, items 13, 14 and 18), each on a real shipper
process, real files and a real collector:

- a checkpoint write that fails (here: its temp file's name taken by a directory, which fails
  for root too) must not stop shipping for good: retried with backoff, in the status and the
  log, files already in a checkpoint keep shipping, new ones wait and follow once it works;
- files and directories the shipper may not read are in the status and logged once, and are
  shipped once they can be read;
- a line over ``max_line_bytes`` cut by the partial-line timer is counted as truncated, and the
  rest of it is never shipped as a line of its own, not even across a restart.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness import (
    ROOT,
    WHARF,
    clean_env,
    shipper_status,
    status_of,
    wait_caught_up,
    wait_for,
)
from tests.shipper.helpers import assert_exactly_once, line, numbers, scene

WAIT_S = 60.0  # generous deadlines: a loaded machine is slow, never wrong


def _warnings(state: Path) -> list[str]:
    return list(status_of(state).get("warnings", []))


def _acked(state: Path) -> int:
    return int(status_of(state).get("counters", {}).get("records_acked", 0))


def test_failed_checkpoint_writes_are_retried_reported_and_shipping_goes_on(
    tmp_path: Path,
) -> None:
    s = scene(tmp_path, [{"paths": ["*.log"], "topic": "ck"}])
    state, col = s.state, s.col
    a = s.logs / "a.log"
    a.write_bytes(b"".join(line(i) for i in range(100)))
    sh = s.shipper.start()
    blocker = state / "checkpoints.json.tmp"
    try:
        wait_caught_up(state)
        blocker.mkdir()  # every checkpoint write now fails (EISDIR), as for root too
        with a.open("ab") as f:
            f.write(b"".join(line(i) for i in range(100, 200)))
        wait_for(
            lambda: any("cannot write checkpoints" in w for w in _warnings(state)),
            WAIT_S,
            "the failing checkpoint writes in the status",
        )
        # a.log is in a checkpoint already: its new lines are still shipped.
        wait_for(lambda: _acked(state) >= 200, WAIT_S, "a.log's new lines acknowledged")
        b = s.logs / "b.log"  # a new file: its batches wait for a checkpoint that names it
        b.write_bytes(b"".join(line(i) for i in range(1000, 1100)))
        wait_for(
            lambda: any(
                f["path"] == str(b) and f["read_offset"] > 0
                for f in status_of(state).get("files", [])
            ),
            WAIT_S,
            "b.log read",
        )
        assert _acked(state) == 200
        assert not sh.exited()
        blocker.rmdir()
        wait_for(lambda: _acked(state) >= 300, WAIT_S, "b.log shipped once checkpoints work")
        wait_for(
            lambda: not any("checkpoint" in w for w in _warnings(state)),
            WAIT_S,
            "the warning gone",
        )
        wait_caught_up(state, min_files=2)
        st = status_of(state)
        assert st["counters"]["checkpoint_errors"] >= 1
        out = sh.output()
        assert "cannot write checkpoints" in out and "checkpoints are written again" in out
        assert "Traceback" not in out
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(numbers(col.lines("ck")), [*range(200), *range(1000, 1100)])


CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
PR_CAPBSET_DROP = 24


def _without_file_capabilities() -> None:
    """In the child, before exec: root without the capabilities that ignore file modes (the
    bounding set is all root keeps across exec), so a mode 000 file is unreadable to it as to
    anyone. Nothing to do for another user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _modes_bind(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        done = subprocess.run(
            ["cat", str(probe)],
            preexec_fn=_without_file_capabilities,  # the point of the probe
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.unlink()
    return done.returncode != 0


@contextmanager
def _shipper_bound_by_modes(config: Path, log: Path) -> Iterator[Callable[[], str]]:
    """``wharf shipper run`` that file modes bind, root or not; yields its log reader."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [WHARF, "shipper", "run", "--config", str(config), "--log-level", "info"],
            cwd=ROOT,
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=clean_env(),
            preexec_fn=_without_file_capabilities,  # noqa: PLW1509 - single-threaded enough
        )
    try:

        def output() -> str:
            return log.read_text(errors="replace")

        wait_for(
            lambda: "shipper ready" in output() or proc.poll() is not None,
            WAIT_S,
            "the shipper to be ready",
        )
        assert proc.poll() is None, output()
        yield output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0, output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)


def test_unreadable_files_and_directories_are_reported_then_shipped_once_readable(
    tmp_path: Path,
) -> None:
    if not _modes_bind(tmp_path):
        pytest.skip("cannot make a file unreadable to the shipper here (root, no CAP_SETPCAP)")
    s = scene(tmp_path, [{"paths": ["**/*.log"], "topic": "perm"}])
    state, col, logs = s.state, s.col, s.logs
    (logs / "ok.log").write_bytes(b"".join(line(i) for i in range(10)))
    secret = logs / "secret.log"
    secret.write_bytes(b"".join(line(i) for i in range(100, 110)))
    secret.chmod(0)
    locked = logs / "locked[x]"  # brackets: a path, not rich markup, in the status table
    locked.mkdir()
    (locked / "inner.log").write_bytes(b"".join(line(i) for i in range(200, 210)))
    locked.chmod(0)
    try:
        with _shipper_bound_by_modes(s.config, tmp_path / "shipper.log") as output:

            def both_reported() -> bool:
                found = _warnings(state)
                return all(
                    any(w.startswith(f"cannot read {p}: Permission denied") for w in found)
                    for p in (secret, locked)
                )

            wait_for(both_reported, WAIT_S, "both unreadable paths in the status")
            table = shipper_status(s.config, "table", COLUMNS="400")
            assert f"warning: cannot read {locked}: Permission denied" in table, table
            wait_caught_up(state)  # ok.log, the one it could read, is shipped meanwhile
            secret.chmod(0o644)
            locked.chmod(0o755)
            wait_caught_up(state, min_files=3)  # found again by the next rescan
            assert not any(w.startswith("cannot read") for w in _warnings(state))
            reported = [ln for ln in output().splitlines() if "cannot read" in ln]
            # One line for both, at start, however many rescans found them again since.
            assert len(reported) == 1 and "WARNING" in reported[0], reported
            assert "cannot read 2 paths" in reported[0], reported
    finally:
        secret.chmod(0o644)
        locked.chmod(0o755)
        col.stop()
    assert_exactly_once(
        numbers(col.lines("perm")), [*range(10), *range(100, 110), *range(200, 210)]
    )


def test_a_long_line_cut_by_the_partial_line_timer_is_counted_and_its_rest_dropped(
    tmp_path: Path,
) -> None:
    """A 100 KB line without its newline (max_line_bytes 1 KiB): once the partial-line timer
    cuts it, the status counts one truncated line and the collector has its first KiB. The
    shipper is stopped while the line is still being written; the rest of the line, written
    while it is down, is dropped after the restart (the checkpoint says the line was cut),
    and the lines after it are shipped."""
    s = scene(tmp_path, [{"paths": ["*.log"], "topic": "long"}], max_line_bytes=1024)
    state, col = s.state, s.col
    log = s.logs / "app.log"
    log.write_bytes(b"".join(line(i) for i in range(10)) + b"y" * 100_000)
    sh = s.shipper.start()
    try:
        wait_for(
            lambda: status_of(state).get("counters", {}).get("truncated_lines") == 1,
            WAIT_S,
            "the cut line counted as truncated",
        )
        wait_caught_up(state)  # its head is acknowledged
        with log.open("ab") as f:
            f.write(b"y" * 50_000)  # the same line goes on
        assert sh.term() == 0
        with log.open("ab") as f:
            f.write(b"z" * 50_000 + b"\n" + b"".join(line(i) for i in range(10, 20)))
        sh.start()
        wait_caught_up(state)
        assert status_of(state)["counters"]["truncated_lines"] == 0  # not counted twice
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    lines = col.lines("long")
    assert_exactly_once(numbers(lines), range(20))
    others = [text for text in lines if not text.startswith("n=")]
    assert others == ["y" * 1024], [t[:20] for t in others]
