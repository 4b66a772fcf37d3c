"""The batch layout that the builder (``wharf._build``) and the reader (``wharf.batch``) share:
the header struct, the limits, the msgpack sections and the zstd contexts. The format itself
is described in ``wharf.batch``'s docstring."""

from __future__ import annotations

import struct
import threading
from typing import Any, Final

import msgspec
import zstandard

from wharf.record import LEVELS

MAGIC: Final = b"WHRF"
VERSION: Final = 2  # what ``build`` writes unless told otherwise
VERSIONS: Final = (1, 2)  # what ``Batch`` reads

HEADER: Final = struct.Struct(">qqII4sBBIqq16sqIIIIIII")
HEADER_SIZE: Final = HEADER.size
PREFIX_SIZE: Final = 20  # base_offset + append_ms + length: what precedes the checked bytes
CRC_START: Final = 24  # first byte after the crc field
VERSION_AT: Final = 28  # the version byte

# Limits. A batch is built by a shipper from at most a few seconds of one host's logs; these
# bounds keep one batch's memory on the collector small enough that many can be in flight.
MAX_RECORDS: Final = 1 << 20  # 1,048,576: far above any sane linger, low enough to bound arrays
MAX_LINES_BYTES: Final = 64 << 20  # 64 MiB of text: a batch of max-size lines still fits
MAX_FIELDS_BYTES: Final = 64 << 20  # parsed fields roughly mirror the text
MAX_COLUMNS_BYTES: Final = 48 * MAX_RECORDS  # 8 arrays of <= 8 bytes per record, with room
MAX_META_BYTES: Final = 1 << 20  # spans + dictionaries; thousands of files still fit
MAX_BATCH_BYTES: Final = 80 << 20  # compressed: nobody compresses worse than ~1:1 plus framing
MAX_DICT_ENTRIES: Final = 1 << 16  # distinct hosts or sources or file ids in one batch

ATTR_MULTILINE: Final = 0x01  # some record's line contains "\n"
KNOWN_ATTRS: Final = ATTR_MULTILINE

LEVEL_CODE: Final = {name: i + 1 for i, name in enumerate(LEVELS)}
LEVEL_NAME: Final[tuple[str | None, ...]] = (None, *LEVELS)


class Span(msgspec.Struct, array_like=True, frozen=True):
    """Bytes ``[start, end)`` of file ``file_id`` that the batch carries (exactly-once)."""

    file_id: str
    start: int
    end: int


class Meta(msgspec.Struct, array_like=True):
    """The uncompressed meta section."""

    spans: list[Span]
    hosts: list[str]
    sources: list[str]


class Columns(msgspec.Struct, array_like=True):
    """The columns frame of version 1."""

    ts: bytes  # zigzag deltas from the previous ts (the first from min_ts), shuffled uint64
    host: bytes  # uint32 index into meta.hosts
    source: bytes  # uint32 index into meta.sources
    level: bytes  # one code per record: 0 none, 1.. LEVELS
    line_len: bytes  # uint32 byte length of each line; empty unless ATTR_MULTILINE
    file: bytes  # uint32 index into file_ids
    offset: bytes  # zigzag deltas of the origin offsets, shuffled uint64
    fields_len: bytes  # uint32 byte length of each record's encoded fields (0: empty)
    file_ids: list[str]


class ColumnsV2(msgspec.Struct, array_like=True):
    """The columns frame of version 2: no ``fields_len`` (the fields section is columnar), and
    ``offset`` relative to where the previous record's line ended."""

    ts: bytes  # as version 1
    host: bytes
    source: bytes
    level: bytes
    line_len: bytes
    file: bytes
    # zigzag of (offset - expected), shuffled uint64, where expected is 0 for the first record
    # and the previous record's offset + the byte length of its line + 1 for the others: 0
    # for every line that follows the previous one in its file ("line\n" after "line\n").
    offset: bytes
    file_ids: list[str]


meta_enc: Final = msgspec.msgpack.Encoder()
meta_dec: Final = msgspec.msgpack.Decoder(Meta)
cols_dec: Final = msgspec.msgpack.Decoder(Columns)
cols_v2_dec: Final = msgspec.msgpack.Decoder(ColumnsV2)
_local = threading.local()


def cctx(level: int) -> Any:
    """This thread's zstd compressor at ``level`` (contexts are not thread-safe)."""
    key = f"c{level}"
    ctx = getattr(_local, key, None)
    if ctx is None:
        ctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
        setattr(_local, key, ctx)
    return ctx


def dctx() -> Any:
    """This thread's zstd decompressor."""
    ctx = getattr(_local, "d", None)
    if ctx is None:
        ctx = zstandard.ZstdDecompressor()
        _local.d = ctx
    return ctx


class Dictionary:
    """Dictionary encoder: value -> small index, in first-seen order."""

    __slots__ = ("index", "values")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.values: list[str] = []

    def codes(self, values: list[str]) -> list[int]:
        """``code`` of each value; one dictionary look-up when they are all the same."""
        if values and values.count(values[0]) == len(values):
            return [self.code(values[0])] * len(values)
        return [self.code(v) for v in values]

    def code(self, value: str) -> int:
        """The index of ``value``, added if new."""
        i = self.index.get(value)
        if i is None:
            i = self.index[value] = len(self.values)
            self.values.append(value)
        return i
