"""copytruncate with Debian's real logrotate while a writer appends at full speed."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.harness import (
    CollectorProcess,
    ShipperProcess,
    status_of,
    wait_caught_up,
    write_shipper_config,
)
from tests.shipper.helpers import assert_exactly_once, line, numbers

LOGROTATE = shutil.which("logrotate") or (
    "/usr/sbin/logrotate" if Path("/usr/sbin/logrotate").exists() else None
)


@pytest.mark.slow
@pytest.mark.skipif(
    LOGROTATE is None,
    reason="Debian's logrotate is not installed (apt-get install logrotate; .ci/run installs it)",
)
def test_copytruncate_with_real_logrotate_under_load(tmp_path: Path) -> None:
    """A writer appends (O_APPEND) ~15k lines/s while ``logrotate -f`` with ``copytruncate``
    (compress, delaycompress) rotates every ~0.8 s. logrotate itself loses the lines written
    between its copy and its truncate (its man page says so), so the truth is what the writer
    wrote: no number may be stored twice, none that is in a rotated copy or in the live file
    may be missing, and nothing may be stored that was never written."""
    assert LOGROTATE is not None
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    live.touch()
    conf = tmp_path / "logrotate.conf"
    conf.write_text(
        f"{live} {{\n  copytruncate\n  rotate 1000\n  compress\n  delaycompress\n"
        "  missingok\n  notifempty\n}\n"
    )
    col = CollectorProcess(tmp_path / "data").start()
    cfg = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=tmp_path / "state",
        collectors=[col.address],
        inputs=[{"paths": [str(live)], "topic": "ct"}],
    )
    sh = ShipperProcess(cfg, tmp_path / "shipper.log").start()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        n = 0
        t0 = time.monotonic()
        with live.open("ab") as f:  # O_APPEND: after the truncate, writes land at the new end
            while not stop.is_set():
                f.write(b"".join(line(i) for i in range(n, n + 100)))
                f.flush()
                n += 100
                written[0] = n
                ahead = n / 15_000 - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    t = threading.Thread(target=writer)
    t.start()
    rotations = 0
    try:
        for _ in range(10):
            time.sleep(0.8)
            subprocess.run(
                [LOGROTATE, "-f", "-s", str(tmp_path / "lr.state"), str(conf)],
                check=True,
                timeout=60,
            )
            rotations += 1
        stop.set()
        t.join(10)
        wait_caught_up(tmp_path / "state", timeout=60)
        st = status_of(tmp_path / "state")
        assert sh.term() == 0
    finally:
        stop.set()
        sh.close()
        col.stop()
    on_disk: list[int] = []
    for p in sorted(logs.iterdir()):
        data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
        on_disk += numbers(data.decode().splitlines())
    stored = numbers(col.lines("ct"))
    counts: dict[int, int] = {}
    for n in stored:
        counts[n] = counts.get(n, 0) + 1
    dups = [n for n, c in counts.items() if c > 1]
    assert not dups, f"{len(dups)} numbers stored twice, e.g. {sorted(dups)[:10]}"
    missing = sorted(set(on_disk) - set(counts))
    assert not missing, f"{len(missing)} numbers on disk never stored, e.g. {missing[:10]}"
    assert set(counts) <= set(range(written[0])), "stored numbers that were never written"
    lost_by_logrotate = set(range(written[0])) - set(on_disk)
    saved = lost_by_logrotate & set(counts)
    assert st["counters"]["truncations"] >= rotations - 1
    print(
        f"\ncopytruncate: {written[0]} lines, {rotations} rotations, logrotate lost "
        f"{len(lost_by_logrotate)} lines on disk, shipper had read {len(saved)} of them live; "
        f"copies followed: {st['counters']['copies_followed']}, dropped bytes: "
        f"{st['drops']['dropped_bytes_truncated']}"
    )


def test_copytruncate_while_the_reader_lags_recovers_unread_bytes_from_the_copy(
    tmp_path: Path,
) -> None:
    """The shipper is held back (collector down, a tiny memory queue, no spool) in the
    middle of a 2 MB file when the file is copied to ``app.log.1`` and truncated (what
    copytruncate does). The bytes it had not read yet exist only in the copy: it reads them
    from there under the same file id, then the truncated file from 0. Exactly once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    live = logs / "app.log"
    first = 20_000
    live.write_bytes(b"".join(line(i) for i in range(first)))
    # fixed ports: the shipper is configured, and started, before its collector exists
    col = CollectorProcess(tmp_path / "data", fixed_ports=True)
    cfg = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=tmp_path / "state",
        collectors=[col.address],
        inputs=[{"paths": [str(live)], "topic": "ct"}],
        memory_queue_bytes=20_000,
        spool_max_bytes=0,
        batch_bytes=65536,
        window=2,
    )
    sh = ShipperProcess(cfg, tmp_path / "shipper.log").start()
    try:
        time.sleep(1.5)
        st = status_of(tmp_path / "state")
        read = st["files"][0]["read_offset"]
        assert 0 < read < live.stat().st_size, "the reader should be stuck mid-file"
        shutil.copyfile(live, logs / "app.log.1")
        with live.open("r+b") as f:
            f.truncate(0)
        with live.open("ab") as f:
            f.write(b"".join(line(i) for i in range(first, first + 500)))
        col.start()
        wait_caught_up(tmp_path / "state", timeout=60)
        st = status_of(tmp_path / "state")
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert st["counters"]["copies_followed"] == 1
    assert st["drops"]["dropped_bytes_truncated"] == 0

    assert_exactly_once(numbers(col.lines("ct")), range(first + 500))
