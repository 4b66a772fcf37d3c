"""What the daemon tells the outside: counters, the status file, and Prometheus text.

The daemon writes ``state_dir/status.json`` atomically (temp file, rename) about once a second
while anything changes; ``wharf shipper status`` reads it, so a status query never talks to
the daemon and works while it is busy or stopped (``pid`` and ``updated_at`` say how fresh it
is). ``/metrics`` renders the same counters.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

import msgspec

STATUS_NAME: Final = "status.json"


@dataclass
class Stats:
    """Counters since start. Every drop has its own counter."""

    lines_read: int = 0
    events: int = 0
    bytes_read: int = 0
    batches_built: int = 0
    batches_acked: int = 0
    records_acked: int = 0
    duplicate_batches: int = 0
    truncated_lines: int = 0
    invalid_utf8_lines: int = 0
    parse_errors: int = 0
    rotations: int = 0
    truncations: int = 0
    copies_followed: int = 0
    forced_cuts: int = 0
    checkpoint_errors: int = 0  # checkpoint writes the disk refused (each is tried again)
    # Drops: bytes or batches that will never reach a collector.
    dropped_batches_refused: int = 0  # the collector refused them for good (NACK)
    dropped_spool_corrupt: int = 0  # spool items damaged on disk
    dropped_bytes_truncated: int = 0  # a file shrank before these bytes were read
    dropped_bytes_vanished: int = 0  # a file was gone before these bytes were read

    @property
    def drops(self) -> dict[str, int]:
        """Every drop counter."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.startswith("dropped")}


class FileStatus(msgspec.Struct, kw_only=True):
    """One file in the status output."""

    path: str
    input: str
    topic: str
    file_id: str
    dev: int
    ino: int
    offset: int  # acknowledged
    read_offset: int
    size: int
    lag_bytes: int
    last_read: float
    rotations: int
    state: str  # open, closed, detached, finishing, waiting


class FilesSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """What the file table shows the outside (``FileTable.snapshot``)."""

    files: list[FileStatus]  # by path
    open_files: int
    followed_files: int
    unreadable: dict[str, str]  # path -> why

    @property
    def lag_bytes(self) -> int:
        """Bytes written to followed files and not yet acknowledged."""
        return sum(f.lag_bytes for f in self.files)


class DeliverySnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """What the way out (producer, outbox, spool) shows the outside."""

    connection: str  # "connected HOST:PORT", "disconnected", "not started"
    connected: bool
    last_error: str
    spool_bytes: int
    spool_batches: int
    spooling: bool
    queued_batches: int
    inflight_batches: int
    memory_queue_bytes: int


class StatusReport(msgspec.Struct, kw_only=True):
    """The whole status file."""

    pid: int
    started_at: float
    updated_at: float
    shipper_id: str
    host: str
    connection: str
    last_error: str
    collectors: list[str]
    inotify: bool
    open_files: int
    followed_files: int
    spool_bytes: int
    spool_batches: int
    spooling: bool
    queued_batches: int
    inflight_batches: int
    memory_queue_bytes: int
    checkpoint_writes: int
    warnings: list[str]
    counters: dict[str, int]
    drops: dict[str, int]
    files: list[FileStatus]


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(StatusReport)


def write_status(state_dir: Path, report: StatusReport) -> None:
    """Replace the status file atomically (no fsync: it is rewritten every second)."""
    path = state_dir / STATUS_NAME
    tmp = state_dir / (STATUS_NAME + ".tmp")
    tmp.write_bytes(_enc.encode(report))
    os.replace(tmp, path)


def read_status(state_dir: Path) -> StatusReport:
    """Parse the status file (``FileNotFoundError`` when the daemon never ran here)."""
    return _dec.decode((state_dir / STATUS_NAME).read_bytes())


def daemon_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (the status file may be a dead daemon's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HELP: Final = {
    "lines_read": "Lines read from files",
    "events": "Events (records) produced, after multiline grouping",
    "bytes_read": "Bytes read from files",
    "batches_built": "Batches built",
    "batches_acked": "Batches acknowledged by a collector",
    "records_acked": "Records acknowledged by a collector",
    "duplicate_batches": "Batches the collector already had (re-sent after a restart)",
    "truncated_lines": "Lines cut at max_line_bytes",
    "invalid_utf8_lines": "Lines with invalid UTF-8 (replaced with U+FFFD)",
    "parse_errors": "Lines the parser could not parse (shipped raw)",
    "rotations": "Files renamed away or deleted while followed",
    "truncations": "Files truncated or replaced in place",
    "copies_followed": "Rotated copies read to recover bytes after a copytruncate",
    "forced_cuts": "Events cut by a timer (partial line, multiline timeout, rotation)",
    "checkpoint_errors": "Checkpoint writes that failed (each is tried again with backoff)",
}


def metrics_text(stats: Stats, gauges: dict[str, float]) -> str:
    """Prometheus text exposition of the counters and gauges."""
    out: list[str] = []
    for name, help_ in _HELP.items():
        metric = f"wharf_shipper_{name}_total"
        out += [
            f"# HELP {metric} {help_}",
            f"# TYPE {metric} counter",
            f"{metric} {getattr(stats, name)}",
        ]
    out += [
        "# HELP wharf_shipper_dropped_total Data that will never reach a collector, by reason",
        "# TYPE wharf_shipper_dropped_total counter",
    ]
    for name, value in stats.drops.items():
        out.append(
            f'wharf_shipper_dropped_total{{reason="{name.removeprefix("dropped_")}"}} {value}'
        )
    for name, gauge in gauges.items():
        metric = f"wharf_shipper_{name}"
        out += [f"# TYPE {metric} gauge", f"{metric} {gauge:g}"]
    return "\n".join(out) + "\n"


def remove_stale_tmp(state_dir: Path) -> None:
    """Remove a temp file left by a crash mid-write."""
    with contextlib.suppress(FileNotFoundError):
        (state_dir / (STATUS_NAME + ".tmp")).unlink()
