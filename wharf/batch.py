"""The batch: Wharf's one format for the wire, the disk, the cluster backend and consumers.

A shipper builds a batch; the collector checks it and stores its bytes as they came, only
filling in the base offset and the append time (like a Kafka broker). Layout, big-endian::

    offset size field          meaning
    ------ ---- -------------- ----------------------------------------------------------------
     0      8   base_offset    offset of the first record; set by the collector (-1 until then)
     8      8   append_ms      wall-clock ms when the collector appended it (0 until then)
    16      4   length         bytes that follow this field (header rest + meta + payload)
    20      4   crc            CRC-32 of bytes [24, end of batch): everything below
    24      4   magic          b"WHRF"
    28      1   version        1
    29      1   attributes     bit 0: some line holds a newline (a multiline event);
                                   other bits reserved, 0 (the only codec is zstd)
    30      4   record_count   1 .. MAX_RECORDS
    34      8   min_ts         smallest record ts (ns since epoch)
    42      8   max_ts         largest record ts
    50     16   producer_id    the shipper's id (UUID bytes), zero for anonymous producers
    66      8   producer_seq   the producer's batch sequence number (diagnostics, ordering)
    74      4   meta_len       bytes of the uncompressed meta section
    78      4   cols_clen      compressed bytes of the columns frame
    82      4   cols_ulen      its uncompressed size
    86      4   lines_clen     compressed bytes of the lines frame
    90      4   lines_ulen     its uncompressed size
    94      4   fields_clen    compressed bytes of the fields frame (0 when no record has fields)
    98      4   fields_ulen    its uncompressed size
   102          meta, then the three zstd frames, back to back

``base_offset``, ``append_ms`` and ``length`` stay outside the checksum because the collector
writes the first two and the third is checked against the section sizes inside it (Kafka keeps
its base offset and leader epoch outside the CRC for the same reason).

Checksum: CRC-32 (zlib) over the compressed bytes. It is in the standard library, runs in C at
gigabytes per second (and releases the GIL), and detects every burst error up to 32 bits, which
is what a torn write or a flipped bit produce. It is not a defence against an attacker; tokens
and TLS are. Computed over compressed bytes, it costs about a tenth of hashing the raw text.

Meta (uncompressed msgpack, so the collector reads it without decompressing anything): the
source spans ``(file_id, start, end)`` for exactly-once delivery, and the host and source
dictionaries, so a search can skip a batch by host or source before decompressing it.

Columns frame (msgpack of little-endian arrays): per-record ts minus ``min_ts``, host index,
source index, level code, byte length of ``line``, file-id index, origin offset, byte length
of the record's encoded fields. Lines frame: every ``line`` in UTF-8, joined with ``\\n``, so a
search decompresses one blob and runs one pass over it. Fields frame: each non-empty record's
``fields`` as msgpack, back to back; decompressed only for records that are returned.
"""

from __future__ import annotations

import operator
import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any, Final

import msgspec
import zstandard

from wharf.errors import BatchTooLarge, CorruptBatch, InvalidArgument
from wharf.record import LEVELS, Record

MAGIC: Final = b"WHRF"
VERSION: Final = 1

HEADER: Final = struct.Struct(">qqII4sBBIqq16sqIIIIIII")
HEADER_SIZE: Final = HEADER.size
PREFIX_SIZE: Final = 20  # base_offset + append_ms + length: what precedes the checked bytes
_CRC_START: Final = 24  # first byte after the crc field
_BASE_OFFSET = struct.Struct(">qq")

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
_KNOWN_ATTRS: Final = ATTR_MULTILINE

_LEVEL_CODE: Final = {name: i + 1 for i, name in enumerate(LEVELS)}
_LEVEL_NAME: Final[tuple[str | None, ...]] = (None, *LEVELS)
_LITTLE = sys.byteorder == "little"
_PLUS_ONE: Final = (1).__add__


class Span(msgspec.Struct, array_like=True, frozen=True):
    """Bytes ``[start, end)`` of file ``file_id`` that the batch carries (exactly-once)."""

    file_id: str
    start: int
    end: int


class _Meta(msgspec.Struct, array_like=True):
    spans: list[Span]
    hosts: list[str]
    sources: list[str]


class _Columns(msgspec.Struct, array_like=True):
    ts: bytes  # zigzag deltas from the previous ts (the first from min_ts), shuffled uint64
    host: bytes  # uint32 index into meta.hosts
    source: bytes  # uint32 index into meta.sources
    level: bytes  # one code per record: 0 none, 1.. LEVELS
    line_len: bytes  # uint32 byte length of each line; empty unless ATTR_MULTILINE
    file: bytes  # uint32 index into file_ids
    offset: bytes  # zigzag deltas of the origin offsets, shuffled uint64
    fields_len: bytes  # uint32 byte length of each record's encoded fields (0: empty)
    file_ids: list[str]


_meta_enc = msgspec.msgpack.Encoder()
_meta_dec = msgspec.msgpack.Decoder(_Meta)
_cols_dec = msgspec.msgpack.Decoder(_Columns)
_fields_enc = msgspec.msgpack.Encoder()
_fields_dec = msgspec.msgpack.Decoder(dict[str, Any])
_fields_list_dec = msgspec.msgpack.Decoder(list[dict[str, Any]])
_local = threading.local()


def _cctx(level: int) -> Any:
    key = f"c{level}"
    ctx = getattr(_local, key, None)
    if ctx is None:
        ctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
        setattr(_local, key, ctx)
    return ctx


def _dctx() -> Any:
    ctx = getattr(_local, "d", None)
    if ctx is None:
        ctx = zstandard.ZstdDecompressor()
        _local.d = ctx
    return ctx


def _le(typecode: str, values: Iterable[int]) -> bytes:
    """Little-endian array bytes, byte-shuffled: all first bytes, then all second bytes...

    Shuffling puts the mostly-zero high bytes of small numbers next to each other, so zstd
    squeezes a column of lengths or deltas to a fraction of a byte per record (as Blosc and
    Parquet's byte-stream-split do).
    """
    arr = array(typecode, values)
    if not _LITTLE:
        arr.byteswap()
    raw = arr.tobytes()
    width = arr.itemsize
    if width == 1:
        return raw
    return b"".join(raw[k::width] for k in range(width))


def _from_le(typecode: str, data: bytes, count: int, what: str) -> array[int]:
    arr: array[int] = array(typecode)
    width = arr.itemsize
    if len(data) != count * width:
        raise CorruptBatch(f"column {what} has {len(data)} bytes, expected {count * width}")
    if width > 1:
        raw = bytearray(len(data))
        for k in range(width):
            raw[k::width] = data[k * count : (k + 1) * count]
        data = bytes(raw)
    arr.frombytes(data)
    if not _LITTLE:
        arr.byteswap()
    return arr


_U64: Final = (1 << 64) - 1


def _zigzag_deltas(values: Sequence[int], first: int) -> list[int]:
    """Differences from the previous value (the first from ``first``), zigzag-encoded in 64
    bits: ascending timestamps or offsets become small, repetitive numbers."""
    if not values:
        return []
    prevs = [first, *values[:-1]]
    deltas = list(map(operator.sub, values, prevs))
    if min(deltas) >= -(1 << 63) and max(deltas) < (1 << 63):
        # No wrap needed: zigzag of an int64 d is 2d (d >= 0) or -2d - 1 (d < 0).
        return [d + d if d >= 0 else -d - d - 1 for d in deltas]
    out: list[int] = []
    for raw in deltas:
        d = ((raw + (1 << 63)) & _U64) - (1 << 63)  # wrap into int64
        out.append(((d << 1) ^ (d >> 63)) & _U64)
    return out


def _undo_zigzag_deltas(codes: Iterable[int], first: int) -> list[int]:
    out: list[int] = []
    prev = first
    for z in codes:
        prev = ((prev + ((z >> 1) ^ -(z & 1)) + (1 << 63)) & _U64) - (1 << 63)
        out.append(prev)
    return out


def _levels(records: Sequence[Record]) -> bytes:
    levels = [r.level for r in records]
    if levels.count(None) == len(levels):
        return bytes(len(levels))
    return bytes(_LEVEL_CODE.get(lv, 0) if lv else 0 for lv in levels)


class _Dict:
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
        i = self.index.get(value)
        if i is None:
            i = self.index[value] = len(self.values)
            self.values.append(value)
        return i


def build(
    records: Sequence[Record],
    *,
    producer_id: bytes = bytes(16),
    producer_seq: int = 0,
    spans: Sequence[Span] = (),
    level: int = 3,
) -> bytes:
    """Encode ``records`` into a batch (base offset -1, append time 0).

    Raises ``InvalidArgument`` for an empty batch or a malformed producer id, and
    ``BatchTooLarge`` when a limit is exceeded.
    """
    n = len(records)
    if n == 0:
        raise InvalidArgument("a batch needs at least one record")
    if n > MAX_RECORDS:
        raise BatchTooLarge(f"{n} records exceed MAX_RECORDS={MAX_RECORDS}")
    if len(producer_id) != 16:
        raise InvalidArgument(f"producer_id must be 16 bytes, got {len(producer_id)}")
    hosts, sources, files = _Dict(), _Dict(), _Dict()
    ts_list = [r.ts for r in records]
    min_ts, max_ts = min(ts_list), max(ts_list)
    if min_ts < -(2**63) or max_ts >= 2**63:
        raise InvalidArgument(f"record ts outside the 64-bit range: {min_ts}..{max_ts}")
    lines = [r.line for r in records]
    lines_raw = "\n".join(lines).encode("utf-8", "surrogatepass")
    attrs = ATTR_MULTILINE if lines_raw.count(b"\n") != n - 1 else 0
    # Line lengths are only stored when some line holds a newline; otherwise the newlines of
    # the blob delimit the records and the column would be ~5% of the batch for nothing.
    line_len = (
        [len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass")) for s in lines]
        if attrs
        else []
    )
    field_blobs: list[bytes] = []
    fields_len: list[int] = []
    for r in records:
        if r.fields:
            blob = _fields_enc.encode(r.fields)
            field_blobs.append(blob)
            fields_len.append(len(blob))
        else:
            fields_len.append(0)
    try:
        cols = _Columns(
            ts=_le("Q", _zigzag_deltas(ts_list, min_ts)),
            host=_le("I", hosts.codes([r.host for r in records])),
            source=_le("I", sources.codes([r.source for r in records])),
            level=_levels(records),
            line_len=_le("I", line_len),
            file=_le("I", files.codes([r.file_id for r in records])),
            offset=_le("Q", _zigzag_deltas([r.offset for r in records], 0)),
            fields_len=_le("I", fields_len),
            file_ids=files.values,
        )
    except OverflowError as exc:
        raise InvalidArgument(f"a record value is out of range: {exc}") from exc
    if max(len(hosts.values), len(sources.values), len(files.values)) > MAX_DICT_ENTRIES:
        raise BatchTooLarge(f"more than MAX_DICT_ENTRIES={MAX_DICT_ENTRIES} distinct values")
    fields_raw = b"".join(field_blobs)
    if len(lines_raw) > MAX_LINES_BYTES:
        raise BatchTooLarge(f"{len(lines_raw)} bytes of lines exceed MAX_LINES_BYTES")
    if len(fields_raw) > MAX_FIELDS_BYTES:
        raise BatchTooLarge(f"{len(fields_raw)} bytes of fields exceed MAX_FIELDS_BYTES")
    meta = _meta_enc.encode(_Meta(list(spans), hosts.values, sources.values))
    if len(meta) > MAX_META_BYTES:
        raise BatchTooLarge(f"{len(meta)} bytes of meta exceed MAX_META_BYTES")
    cols_raw = msgspec.msgpack.encode(cols)
    cctx = _cctx(level)
    cols_z = cctx.compress(cols_raw)
    lines_z = cctx.compress(lines_raw)
    fields_z = cctx.compress(fields_raw) if fields_raw else b""
    body = b"".join((meta, cols_z, lines_z, fields_z))
    fixed = HEADER.pack(
        -1,
        0,
        0,
        0,
        MAGIC,
        VERSION,
        attrs,
        n,
        min_ts,
        max_ts,
        producer_id,
        producer_seq,
        len(meta),
        len(cols_z),
        len(cols_raw),
        len(lines_z),
        len(lines_raw),
        len(fields_z),
        len(fields_raw),
    )
    length = HEADER_SIZE - PREFIX_SIZE + len(body)
    if HEADER_SIZE + len(body) > MAX_BATCH_BYTES:
        raise BatchTooLarge(f"{HEADER_SIZE + len(body)} bytes exceed MAX_BATCH_BYTES")
    crc = zlib.crc32(body, zlib.crc32(fixed[_CRC_START:]))
    head = bytearray(fixed)
    struct.pack_into(">I", head, 16, length)
    struct.pack_into(">I", head, 20, crc)
    return bytes(head) + body


def with_offset(batch: bytes | bytearray, base_offset: int, append_ms: int) -> bytes:
    """Return ``batch`` with the collector-assigned base offset and append time filled in."""
    return _BASE_OFFSET.pack(base_offset, append_ms) + bytes(batch[16:])


class Header(msgspec.Struct, frozen=True, gc=False):
    """The fixed header of a batch, as read from bytes."""

    base_offset: int
    append_ms: int
    length: int
    attributes: int
    record_count: int
    min_ts: int
    max_ts: int
    producer_id: bytes
    producer_seq: int
    meta_len: int
    cols_clen: int
    cols_ulen: int
    lines_clen: int
    lines_ulen: int
    fields_clen: int
    fields_ulen: int
    crc: int

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return PREFIX_SIZE + self.length

    @property
    def last_offset(self) -> int:
        """Offset of the last record."""
        return self.base_offset + self.record_count - 1

    @property
    def next_offset(self) -> int:
        """Offset right after this batch."""
        return self.base_offset + self.record_count


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> Header:
    """Parse and sanity-check the fixed header at ``buf[pos:]`` (no checksum, no payload).

    Raises ``CorruptBatch`` if the bytes cannot be a batch header.
    """
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptBatch(f"truncated header: {len(buf) - pos} of {HEADER_SIZE} bytes")
    (
        base,
        append_ms,
        length,
        crc,
        magic,
        version,
        attrs,
        count,
        min_ts,
        max_ts,
        pid,
        pseq,
        meta_len,
        cols_clen,
        cols_ulen,
        lines_clen,
        lines_ulen,
        fields_clen,
        fields_ulen,
    ) = HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        raise CorruptBatch(f"bad magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise CorruptBatch(f"unsupported batch version {version}")
    if attrs & ~_KNOWN_ATTRS:
        raise CorruptBatch(f"unknown attributes {attrs:#04x}")
    if not 0 < count <= MAX_RECORDS:
        raise CorruptBatch(f"record count {count} outside 1..{MAX_RECORDS}")
    if min_ts > max_ts:
        raise CorruptBatch(f"min_ts {min_ts} > max_ts {max_ts}")
    body = meta_len + cols_clen + lines_clen + fields_clen
    if length != HEADER_SIZE - PREFIX_SIZE + body:
        raise CorruptBatch(f"length field {length} disagrees with section sizes ({body})")
    if PREFIX_SIZE + length > MAX_BATCH_BYTES:
        raise BatchTooLarge(f"batch of {PREFIX_SIZE + length} bytes exceeds MAX_BATCH_BYTES")
    if meta_len > MAX_META_BYTES:
        raise BatchTooLarge(f"meta of {meta_len} bytes exceeds MAX_META_BYTES")
    if cols_ulen > MAX_COLUMNS_BYTES or lines_ulen > MAX_LINES_BYTES:
        raise BatchTooLarge("columns or lines decompress past their limit")
    if fields_ulen > MAX_FIELDS_BYTES:
        raise BatchTooLarge(f"fields decompress to {fields_ulen} bytes, past MAX_FIELDS_BYTES")
    return Header(
        base,
        append_ms,
        length,
        attrs,
        count,
        min_ts,
        max_ts,
        bytes(pid),
        pseq,
        meta_len,
        cols_clen,
        cols_ulen,
        lines_clen,
        lines_ulen,
        fields_clen,
        fields_ulen,
        crc,
    )


def peek_length(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """Total size of the batch starting at ``buf[pos:]`` from its prefix alone (>= PREFIX_SIZE)."""
    if len(buf) - pos < PREFIX_SIZE:
        raise CorruptBatch("truncated batch prefix")
    (length,) = struct.unpack_from(">I", buf, pos + 16)
    if length < HEADER_SIZE - PREFIX_SIZE or PREFIX_SIZE + length > MAX_BATCH_BYTES:
        raise CorruptBatch(f"implausible batch length {length}")
    return PREFIX_SIZE + int(length)


def _decompress(data: bytes | memoryview, expected: int, what: str) -> bytes:
    if expected == 0 and len(data) == 0:
        return b""
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise CorruptBatch(f"{what} frame: {exc}") from exc
    if declared != expected:
        raise CorruptBatch(f"{what} frame declares {declared} bytes, header says {expected}")
    try:
        out: bytes = _dctx().decompress(data)
    except zstandard.ZstdError as exc:
        raise CorruptBatch(f"{what} frame: {exc}") from exc
    if len(out) != expected:
        raise CorruptBatch(f"{what} frame gave {len(out)} bytes, header says {expected}")
    return out


class Batch:
    """A read-only view of one batch. Payload frames are decompressed lazily, once each.

    ``Batch(buf)`` checks the header, the checksum and the meta section; anything wrong raises
    ``CorruptBatch`` (never another exception) with ``where`` naming the position if given.
    """

    __slots__ = (
        "_buf",
        "_cols",
        "_fields",
        "_lines",
        "_meta",
        "_stops",
        "header",
    )

    def __init__(self, buf: bytes, *, verify: bool = True, where: str = "") -> None:
        try:
            h = read_header(buf)
            if len(buf) != h.size:
                raise CorruptBatch(f"batch has {len(buf)} bytes, header says {h.size}")
            if verify:
                crc = zlib.crc32(memoryview(buf)[_CRC_START:])
                if crc != h.crc:
                    raise CorruptBatch(f"checksum mismatch (stored {h.crc:#010x}, got {crc:#010x})")
            pos = HEADER_SIZE
            try:
                meta = _meta_dec.decode(memoryview(buf)[pos : pos + h.meta_len])
            except (msgspec.DecodeError, ValueError) as exc:
                raise CorruptBatch(f"meta section: {exc}") from exc
        except CorruptBatch as exc:
            if where and not exc.where:
                raise type(exc)(exc.reason, where) from exc
            raise
        self.header = h
        self._buf = buf
        self._meta = meta
        self._cols: _Columns | None = None
        self._lines: bytes | None = None
        self._fields: bytes | None = None
        self._stops: list[int] | None = None

    # -- header and meta ------------------------------------------------------------------

    @property
    def raw(self) -> bytes:
        """The batch bytes as stored."""
        return self._buf

    @property
    def spans(self) -> list[Span]:
        """Source spans carried by the batch."""
        return self._meta.spans

    @property
    def hosts(self) -> list[str]:
        """Distinct hosts in the batch."""
        return self._meta.hosts

    @property
    def sources(self) -> list[str]:
        """Distinct sources in the batch."""
        return self._meta.sources

    def __len__(self) -> int:
        return self.header.record_count

    @property
    def flat(self) -> bool:
        """True when no line holds a newline, so newlines in the blob separate records."""
        return not self.header.attributes & ATTR_MULTILINE

    # -- payload --------------------------------------------------------------------------

    def _frame(self, index: int) -> memoryview:
        h = self.header
        sizes = (h.cols_clen, h.lines_clen, h.fields_clen)
        start = HEADER_SIZE + h.meta_len + sum(sizes[:index])
        return memoryview(self._buf)[start : start + sizes[index]]

    def columns(self) -> _Columns:
        """Decode the columns frame and check it against the header."""
        if self._cols is None:
            h = self.header
            raw = _decompress(self._frame(0), h.cols_ulen, "columns")
            try:
                cols = _cols_dec.decode(raw)
            except (msgspec.DecodeError, ValueError) as exc:
                raise CorruptBatch(f"columns: {exc}") from exc
            n = h.record_count
            for name, size in (
                ("ts", 8), ("host", 4), ("source", 4), ("level", 1),
                ("line_len", 4 if h.attributes & ATTR_MULTILINE else 0),
                ("file", 4), ("offset", 8), ("fields_len", 4),
            ):  # fmt: skip
                got = len(getattr(cols, name))
                if got != n * size:
                    raise CorruptBatch(f"column {name} has {got} bytes for {n} records")
            self._cols = cols
        return self._cols

    def lines_blob(self) -> bytes:
        """All lines in UTF-8 joined by ``\\n`` (decompressed once)."""
        if self._lines is None:
            self._lines = _decompress(self._frame(1), self.header.lines_ulen, "lines")
        return self._lines

    def line_stops(self) -> list[int]:
        """For each record, the blob position right after its line and separator.

        Line ``i`` is ``blob[stops[i - 1] : stops[i] - 1]`` (with ``stops[-1]`` read as 0), and a
        position ``p`` in the blob belongs to record ``bisect_right(stops, p)``.
        """
        if self._stops is None:
            n = self.header.record_count
            if self.flat:
                lens: Iterable[int] = map(len, self._flat_lines())
            else:
                lens = _from_le("I", self.columns().line_len, n, "line_len")
            stops = list(accumulate(map(_PLUS_ONE, lens)))
            if stops[-1] - 1 != self.header.lines_ulen:
                raise CorruptBatch(
                    f"line lengths sum to {stops[-1] - 1}, lines frame has "
                    f"{self.header.lines_ulen} bytes"
                )
            self._stops = stops
        return self._stops

    def _flat_lines(self) -> list[bytes]:
        """The lines of a flat batch, split on newlines (one C call)."""
        parts = self.lines_blob().split(b"\n")
        if len(parts) != self.header.record_count:
            raise CorruptBatch(
                f"{len(parts)} lines in the blob for {self.header.record_count} records "
                "(the batch says no line holds a newline)"
            )
        return parts

    def line_span(self, i: int) -> tuple[int, int]:
        """Start and end of line ``i`` inside ``lines_blob()``."""
        stops = self.line_stops()
        return (stops[i - 1] if i else 0), stops[i] - 1

    def timestamps(self) -> list[int]:
        """Each record's ts."""
        codes = _from_le("Q", self.columns().ts, self.header.record_count, "ts")
        return _undo_zigzag_deltas(codes, self.header.min_ts)

    def host_indexes(self) -> array[int]:
        """Each record's index into ``hosts``."""
        return _from_le("I", self.columns().host, self.header.record_count, "host")

    def source_indexes(self) -> array[int]:
        """Each record's index into ``sources``."""
        return _from_le("I", self.columns().source, self.header.record_count, "source")

    def records(self, indexes: Iterable[int] | None = None) -> list[Record]:
        """Materialize the records at ``indexes`` (all by default), in the order given."""
        n = self.header.record_count
        idx: Iterable[int] = range(n) if indexes is None else indexes
        cols = self.columns()
        if self.flat:
            lines = self._flat_lines()
        else:
            blob, stops = self.lines_blob(), self.line_stops()
            lines = [blob[a:b] for a, b in zip([0, *stops], [s - 1 for s in stops], strict=False)]
        ts = self.timestamps()
        host = _from_le("I", cols.host, n, "host")
        source = _from_le("I", cols.source, n, "source")
        file = _from_le("I", cols.file, n, "file")
        offset = _undo_zigzag_deltas(_from_le("Q", cols.offset, n, "offset"), 0)
        flen = _from_le("I", cols.fields_len, n, "fields_len")
        levels = cols.level
        hosts, sources, files = self._meta.hosts, self._meta.sources, cols.file_ids
        fields_at = self._fields_positions(flen)
        fields_blob = self._fields_blob() if self.header.fields_ulen else b""
        out: list[Record] = []
        try:
            for i in idx:
                fl = flen[i]
                if fl:
                    fp = fields_at[i]
                    fields = _fields_dec.decode(memoryview(fields_blob)[fp : fp + fl])
                else:
                    fields = {}
                out.append(
                    Record(
                        ts=ts[i],
                        line=lines[i].decode("utf-8", "surrogatepass"),
                        host=hosts[host[i]],
                        source=sources[source[i]],
                        fields=fields,
                        level=_LEVEL_NAME[levels[i]],
                        file_id=files[file[i]],
                        offset=offset[i],
                    )
                )
        except (IndexError, UnicodeDecodeError, msgspec.DecodeError, ValueError) as exc:
            raise CorruptBatch(f"record payload: {exc}") from exc
        return out

    def validate(self) -> None:
        """Decode everything once and check it (a collector does this before storing a batch
        from the network, so readers can trust what is on disk)."""
        n = len(self)
        blob = self.lines_blob()
        self.line_stops()
        if self.flat != (blob.count(b"\n") == n - 1):
            raise CorruptBatch("attributes disagree with the lines about embedded newlines")
        cols = self.columns()
        for name, limit in (
            ("host", len(self.hosts)),
            ("source", len(self.sources)),
            ("file", len(cols.file_ids)),
        ):
            if max(_from_le("I", getattr(cols, name), n, name)) >= limit:
                raise CorruptBatch(f"column {name} points past its dictionary of {limit}")
        if cols.level and max(cols.level) >= len(_LEVEL_NAME):
            raise CorruptBatch("unknown level code")
        flen = _from_le("I", cols.fields_len, n, "fields_len")
        self._fields_positions(flen)
        present = sum(1 for x in flen if x)
        if present:
            # All field maps in one decode: an array header in front of the concatenation.
            try:
                _fields_list_dec.decode(b"\xdd" + present.to_bytes(4, "big") + self._fields_blob())
            except (msgspec.DecodeError, ValueError) as exc:
                raise CorruptBatch(f"fields: {exc}") from exc

    def _fields_blob(self) -> bytes:
        if self._fields is None:
            self._fields = _decompress(self._frame(2), self.header.fields_ulen, "fields")
        return self._fields

    def _fields_positions(self, flen: array[int]) -> list[int]:
        if not self.header.fields_ulen:
            return []
        pos, out = 0, []
        for n in flen:
            out.append(pos)
            pos += n
        if pos != self.header.fields_ulen:
            raise CorruptBatch(
                f"field lengths sum to {pos}, fields frame has {self.header.fields_ulen} bytes"
            )
        return out


def iter_batches(buf: bytes, *, where: str = "") -> Iterator[Batch]:
    """Yield the batches stored back to back in ``buf`` (a whole segment read into memory)."""
    pos = 0
    while pos < len(buf):
        size = peek_length(buf, pos)
        yield Batch(buf[pos : pos + size], where=f"{where}@{pos}" if where else f"@{pos}")
        pos += size


def read(buf: bytes) -> list[Record]:
    """Decode one whole batch into records (``CorruptBatch`` on any defect)."""
    return Batch(buf).records()
