"""Shared test helpers for the storage tests (real files under tmp_path, no mocks)."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

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
