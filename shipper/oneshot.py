"""``wharf ship``: send one file or stdin to a collector and return once every record is acked.

Lines are split and, for ``cri``/``docker``, joined from their fragments (``shipper.tail``,
as the daemon does), parsed, grouped into batches of about ``batch_bytes`` of text, and sent
with the native protocol, several batches in flight. Each batch carries the span
of input bytes it covers, so a batch resent after a reconnect is not stored twice.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from parsers import Parser, Record
from parsers.lines import DEFAULT_MAX_LINE_BYTES
from shipper.container import FORMATS as CONTAINER_FORMATS
from shipper.tail import Tail
from shipper.transport import Producer
from wharf import batch as wb
from wharf import protocol as wp

DEFAULT_BATCH_BYTES = 4 << 20  # text per batch: compresses about as well as one zstd stream
_READ_SIZE = 1 << 20
# Built batches waiting for the producer's window, past which reading waits: memory stays a
# few batches deep however large the input and however slow (or refusing) the collector.
_MAX_WAITING_BATCHES = 4


@dataclass
class ShipStats:
    """What a run did."""

    records: int = 0
    batches: int = 0
    duplicates: int = 0
    bytes_read: int = 0
    invalid_utf8_lines: int = 0
    truncated_lines: int = 0
    parse_errors: int = 0


def _to_records(
    lines: list[tuple[int, str]],
    parser: Parser,
    host: str,
    source: str,
    file_id: str,
    stats: ShipStats,
) -> list[Record]:
    now = time.time_ns()
    out = []
    for offset, text in lines:
        parsed = parser.parse(text)
        if parsed.error is not None:
            stats.parse_errors += 1
        out.append(
            Record(
                ts=parsed.ts if parsed.ts is not None else now,
                line=text,
                host=host,
                source=source,
                fields=parsed.fields,
                level=parsed.level,
                file_id=file_id,
                offset=offset,
            )
        )
    return out


async def ship(
    stream: BinaryIO,
    *,
    producer: Producer,
    topic: str,
    parser: Parser,
    source: str,
    file_id: str,
    host: str | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    on_ack: Callable[[wp.Ack], None] | None = None,
) -> ShipStats:
    """Read ``stream`` to its end, ship every line, wait for every ack. A refused batch, or
    the producer giving up (its ``deadline_s``), raises ``DeliveryError`` as soon as it is
    known, with nothing left running."""
    host = host or socket.gethostname()
    stats = ShipStats()
    container = parser.name if parser.name in CONTAINER_FORMATS else None
    tail = Tail(0, max_line_bytes=DEFAULT_MAX_LINE_BYTES, container=container, encoding="auto")
    pending: list[tuple[int, str]] = []
    pending_bytes = 0
    span_start = 0
    sends: list[asyncio.Task[wp.Ack]] = []

    async def cut(end: int) -> None:
        nonlocal pending, pending_bytes, span_start
        if not pending:
            return
        lines, pending, pending_bytes = pending, [], 0
        span = wb.Span(file_id, span_start, end)
        span_start = end
        data = await asyncio.to_thread(_build, lines, span)
        stats.batches += 1
        task = asyncio.get_running_loop().create_task(producer.send(topic, data))
        if on_ack is not None:
            task.add_done_callback(lambda t: t.cancelled() or t.exception() or on_ack(t.result()))
        sends.append(task)
        if len(sends) > producer.window + _MAX_WAITING_BATCHES:
            await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)
        # Keep the task list short; surface a refused batch as early as possible.
        done = [t for t in sends if t.done()]
        for t in done:
            sends.remove(t)
            _count(t.result(), stats)

    def _build(lines: list[tuple[int, str]], span: wb.Span) -> bytes:
        records = _to_records(lines, parser, host, source, file_id, stats)
        return wb.build(records, producer_id=producer.producer_id, spans=[span])

    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await loop.run_in_executor(None, stream.read, _READ_SIZE)
            if not chunk:
                break
            stats.bytes_read += len(chunk)
            for ev in tail.feed(chunk, time.monotonic_ns()):
                pending.append((ev.offset, ev.text))
                pending_bytes += len(ev.text)
            if pending_bytes >= batch_bytes:
                await cut(tail.emitted_end)  # the end of whole events (of whole groups, see Tail)
        for ev in tail.flush(time.monotonic_ns()):
            pending.append((ev.offset, ev.text))
        await cut(tail.next_offset)
        while sends:
            _count(await sends.pop(0), stats)
    finally:
        # On a failure the other sends are abandoned, not left to fail unobserved later
        # ("Task exception was never retrieved" on stderr after the one-line error).
        for t in sends:
            t.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
    stats.invalid_utf8_lines = tail.invalid_utf8_lines
    stats.truncated_lines = tail.truncated_lines
    return stats


def _count(ack: wp.Ack, stats: ShipStats) -> None:
    stats.records += ack.record_count
    if ack.duplicate:
        stats.duplicates += 1


def file_identity(stream: BinaryIO, name: str) -> str:
    """A file id for the spans: device, inode and name (stdin: a fresh id per run)."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return f"stdin:{uuid.uuid4().hex}"
    return f"{st.st_dev}:{st.st_ino}:{name}"
