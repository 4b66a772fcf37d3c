"""What a stream message says about its batch in a header, so the index needs no payload.

Each message's payload is the stored batch, byte for byte as the embedded store keeps it (base
offset and append time filled in). Its ``Wharf-Meta`` header repeats what an index and the
high-water marks need: offsets, count, time range, append time, raw line bytes, producer and
spans, and the batch's hosts when they are few (for pruning by host without a fetch). So a
collector rebuilds its index and marks from a headers-only read of the stream (pure: encode
and decode here, the reading in ``partition``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import msgspec

from wharf import batch as wb
from wharf.errors import CorruptBatch

HEADER: Final = "Wharf-Meta"
# Hosts listed in the header only while they stay this small: the header counts toward the
# server's max_payload and is read for every batch when an index is rebuilt.
MAX_HOSTS_BYTES: Final = 2048


class BatchMeta(msgspec.Struct, array_like=True, frozen=True):
    """One stored batch, as its message header describes it."""

    base_offset: int
    count: int
    min_ts: int
    max_ts: int
    append_ms: int
    line_bytes: int  # lines_ulen + 1: the lines' bytes in their files, newlines included
    stored_bytes: int
    producer_id: bytes
    spans: list[wb.Span]
    hosts: list[str] | None  # None: too many to list (no pruning by host from the index)

    @property
    def next_offset(self) -> int:
        """The offset after this batch."""
        return self.base_offset + self.count


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BatchMeta)


def describe(stored: bytes, batch: wb.Batch) -> BatchMeta:
    """The meta of ``stored`` (a batch with its offset filled in) parsed as ``batch``."""
    h = wb.read_header(stored)
    hosts: list[str] | None = list(batch.hosts)
    if sum(len(x) + 1 for x in batch.hosts) > MAX_HOSTS_BYTES:
        hosts = None
    return BatchMeta(
        base_offset=h.base_offset,
        count=h.record_count,
        min_ts=h.min_ts,
        max_ts=h.max_ts,
        append_ms=h.append_ms,
        line_bytes=h.lines_ulen + 1,
        stored_bytes=len(stored),
        producer_id=h.producer_id,
        spans=list(batch.spans),
        hosts=hosts,
    )


def encode(meta: BatchMeta) -> str:
    """The header value (base64 of msgpack: header values are one line of text)."""
    return base64.b64encode(_encoder.encode(meta)).decode("ascii")


def decode(value: str, where: str) -> BatchMeta:
    """Parse a header value; ``CorruptBatch`` naming ``where`` when it is not ours."""
    try:
        return _decoder.decode(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise CorruptBatch(f"bad {HEADER} header: {exc}", where) from None
