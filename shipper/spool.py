"""The disk spool: built batches waiting for a collector, one file each, bounded in bytes.

``state_dir/spool/<seq:020d>.wsp``: ``WSP1``, CRC-32 and length of the meta, the meta (topic,
key and the batch's spans, msgpack) and the batch exactly as it goes on the wire. Each file is
written to a temp name, fsynced and renamed, so a crash leaves whole items or none; an item that
fails its checksum anyway (a damaged disk) is deleted and counted as dropped.

Items are deleted once the collector acknowledged them. Their order is the sequence number,
which only grows, so a restart replays them in the order they were built.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from wharf.batch import Span
from wharf.fsutil import write_atomically

log = logging.getLogger(__name__)

_MAGIC: Final = b"WSP1"
_HEAD: Final = struct.Struct(">4sII")  # magic, crc32 of meta+batch, meta length
_SUFFIX: Final = ".wsp"


class _Meta(msgspec.Struct, array_like=True):
    topic: str
    key: str
    spans: list[Span]
    records: int


_meta_enc = msgspec.msgpack.Encoder()
_meta_dec = msgspec.msgpack.Decoder(_Meta)


@dataclass(eq=False)
class OutBatch:
    """A built batch on its way out. ``data`` is ``None`` while it lives only in the spool."""

    seq: int
    topic: str
    key: str
    spans: list[Span]
    records: int
    size: int
    data: bytes | None = None
    spooled: bool = False
    attempts: int = field(default=0)


class Spool:
    """A directory of spooled batches (see the module docstring)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.bytes = 0
        self.count = 0
        self.dropped_corrupt = 0
        self.write_errors = 0
        self.remove_errors = 0
        self._sizes: dict[int, int] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, seq: int) -> Path:
        return self.dir / f"{seq:020d}{_SUFFIX}"

    @property
    def full(self) -> bool:
        """Whether the spool has reached its size bound."""
        return self.bytes >= self.max_bytes

    def load(self) -> list[OutBatch]:
        """Items left by an earlier run, oldest first (their data stays on disk)."""
        items: list[OutBatch] = []
        for entry in sorted(self.dir.iterdir()):
            name = entry.name
            if name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
                continue
            stem = name[: -len(_SUFFIX)]
            if not name.endswith(_SUFFIX) or not (stem.isascii() and stem.isdigit()):
                continue
            seq = int(name[: -len(_SUFFIX)])
            try:
                data = entry.read_bytes()
                meta, batch = _decode(data)
            except (OSError, ValueError) as exc:
                log.warning("spool item %s is unreadable (%s): dropped", entry, exc)
                self.dropped_corrupt += 1
                entry.unlink(missing_ok=True)
                continue
            size = len(data)
            self._sizes[seq] = size
            self.bytes += size
            self.count += 1
            items.append(
                OutBatch(
                    seq, meta.topic, meta.key, meta.spans, meta.records, len(batch), None, True
                )
            )
        return items

    def write(self, item: OutBatch) -> bool:
        """Store ``item`` durably; ``False`` (and logged) when the disk refuses."""
        assert item.data is not None
        meta = _meta_enc.encode(_Meta(item.topic, item.key, item.spans, item.records))
        crc = zlib.crc32(item.data, zlib.crc32(meta))
        path = self._path(item.seq)
        try:
            write_atomically(
                path, (_HEAD.pack(_MAGIC, crc, len(meta)), meta, item.data), mode=0o600
            )
        except OSError as exc:
            self.write_errors += 1
            log.error("cannot spool batch %d (%s): it stays in memory", item.seq, exc)
            with contextlib.suppress(OSError):
                path.with_name(path.name + ".tmp").unlink()
            return False
        size = _HEAD.size + len(meta) + len(item.data)
        self._sizes[item.seq] = size
        self.bytes += size
        self.count += 1
        item.spooled = True
        return True

    def read(self, item: OutBatch) -> bytes | None:
        """The batch bytes of a spooled item (``None``: damaged, dropped and counted)."""
        path = self._path(item.seq)
        try:
            _, batch = _decode(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("spool item %s is unreadable (%s): dropped", path, exc)
            self.dropped_corrupt += 1
            self.remove(item)
            return None
        return batch

    def remove(self, item: OutBatch) -> None:
        """Forget an acknowledged (or dropped) item."""
        size = self._sizes.pop(item.seq, None)
        if size is None:
            return
        self.bytes -= size
        self.count -= 1
        item.spooled = False
        try:
            self._path(item.seq).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            # Left on disk, it is replayed at the next start and dropped by the collector as a
            # duplicate: a nuisance, not a reason to stop acknowledging (the caller's task).
            self.remove_errors += 1
            if self.remove_errors % 1000 == 1:  # the first, then one in a thousand
                log.warning(
                    "cannot delete acknowledged spool item %s: %s (%d such failures)",
                    item.seq,
                    exc,
                    self.remove_errors,
                )


def _decode(data: bytes) -> tuple[_Meta, bytes]:
    if len(data) < _HEAD.size:
        raise ValueError("shorter than its header")
    magic, crc, meta_len = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("bad magic")
    meta = data[_HEAD.size : _HEAD.size + meta_len]
    batch = data[_HEAD.size + meta_len :]
    if len(meta) != meta_len or zlib.crc32(batch, zlib.crc32(meta)) != crc:
        raise ValueError("checksum mismatch")
    try:
        return _meta_dec.decode(meta), batch
    except msgspec.DecodeError as exc:
        raise ValueError(f"bad meta: {exc}") from exc
