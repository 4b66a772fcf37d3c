"""Records grouped for a sink: what one delivery carries, which offsets it covers, and the key a
receiver uses to drop a batch it already has."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Final

from cli.render import Encoder
from wharf.api import Hit

# One delivery stops growing at this many bytes of output even if ``--batch`` is larger:
# receivers commonly cap request bodies at a few MiB, and a retry resends all of it.
MAX_BATCH_BYTES: Final = 4 << 20
# An idempotency key longer than this (a batch spanning very many partitions) is hashed:
# HTTP servers limit header sizes, and the key only has to be stable, not readable.
MAX_KEY_CHARS: Final = 200
# Size charged per record when the sink encodes records itself (the wharf:// sink).
_RECORD_OVERHEAD: Final = 64


@dataclass
class SinkBatch:
    """Records for one delivery, in replay order, with their encoded lines (when the sink
    takes lines) and the offsets they cover per partition."""

    records: list[Hit] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition: first, last
    nbytes: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def commits(self) -> dict[int, int]:
        """The next offset per partition once this batch is accepted."""
        return {p: last + 1 for p, (_, last) in self.ranges.items()}

    def idempotency_key(self, topic: str) -> str:
        """Stable for the same records: ``{topic}-{partition}-{first}-{last}``, joined with
        ``_`` across partitions (sorted), hashed when that gets long. A retry sends the same
        key; so does a resumed replay whose first batch is the one that was in flight."""
        key = "_".join(
            f"{topic}-{p}-{first}-{last}" for p, (first, last) in sorted(self.ranges.items())
        )
        if len(key) > MAX_KEY_CHARS:
            key = f"{topic}-sha256-{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        return key


class SinkBatcher:
    """Collects records into ``SinkBatch``es until ``max_records`` or ``max_bytes``; ``take()``
    hands one over. (The shipper's ``Batcher`` builds wire batches; this one, deliveries.)"""

    def __init__(
        self, max_records: int, encode: Encoder | None, max_bytes: int = MAX_BATCH_BYTES
    ) -> None:
        self.max_records = max(1, max_records)
        self.max_bytes = max_bytes
        self._encode = encode
        self._batch = SinkBatch()

    def __len__(self) -> int:
        return len(self._batch)

    def add(self, rec: Hit) -> bool:
        """Add one record; ``True`` when the batch is full and should be taken now."""
        b = self._batch
        b.records.append(rec)
        if self._encode is not None:
            line = self._encode(rec)
            b.lines.append(line)
            b.nbytes += len(line)
        else:
            b.nbytes += len(rec.line) + _RECORD_OVERHEAD
        p, off = rec.partition, rec.offset
        first = b.ranges.get(p, (off, off))[0]
        b.ranges[p] = (first, off)
        return len(b.records) >= self.max_records or b.nbytes >= self.max_bytes

    def take(self) -> SinkBatch | None:
        """The records collected so far (``None`` if there are none); starts a new batch."""
        if not self._batch.records:
            return None
        batch, self._batch = self._batch, SinkBatch()
        return batch
