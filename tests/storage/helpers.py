"""Shared test helpers for the storage tests (real files under tmp_path, no mocks)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path

import pytest

from wharf import batch as wb
from wharf.record import Record

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
T0 = 1_700_000_000_000_000_000


class Clock:
    """A settable millisecond clock for append times (retention and roll by age)."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def numbered(
    start: int, count: int, *, file_id: str = "f", host: str = "h", width: int = 60
) -> bytes:
    """A batch of records ``start .. start+count-1``; line ``n`` is ``rec-<n>`` padded; its
    origin offset is ``n * width`` and the span covers exactly those bytes."""
    recs = [
        Record(
            ts=T0 + n * 1_000_000_000,
            line=f"rec-{n:08d} " + sha256(str(n).encode()).hexdigest()[: width - 14],
            host=host,
            source="/var/log/app.log",
            file_id=file_id,
            offset=n * width,
        )
        for n in range(start, start + count)
    ]
    return wb.build(recs, spans=[wb.Span(file_id, start * width, (start + count) * width)])


def numbers_in(batches: list[wb.Batch]) -> list[int]:
    return [int(r.line[4:12]) for b in batches for r in b.records()]


@contextmanager
def small_disk(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``: a real disk that fills up (writes then fail
    with ENOSPC, as on a full data disk). Mounting needs root; elsewhere the test is skipped.
    Unmounted lazily at the end, so a child still holding a file there cannot keep it mounted."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root (a small tmpfs)")
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill_disk(directory: Path) -> Path:
    """Write a file in ``directory`` until its filesystem has no byte left; return its path
    (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (b"\0" * (1 << 16), b"\0" * 512, b"\0"):
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler
