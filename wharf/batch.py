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
    28      1   version        1 or 2 (below)
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

Lines frame (both versions): every ``line`` in UTF-8, joined with ``\\n``, so a search
decompresses one blob and runs one pass over it. Unless ``attributes`` says some line holds a
newline, the blob's newlines delimit the records and no length is stored.

Version 1. Columns frame (msgpack of little-endian arrays, byte-shuffled): per-record ts
minus the previous one (zigzag), host index, source index, level code, byte length of ``line``
(multiline batches only), file-id index, origin offset (zigzag deltas), byte length of the
record's encoded fields. Fields frame: each non-empty record's ``fields`` as a msgpack map,
back to back.

Version 2 (the shipper's zero-copy path; negotiated in HELLO, see ``wharf.protocol``).
Same header, meta and lines frame. Two changes make a batch buildable from a file's bytes
with a handful of C-level operations per chunk, and checkable without decoding every record:

- the ``offset`` column holds each record's offset minus where the previous record's line
  ended (its offset + its line's bytes + 1; 0 for the first record): 0 for every line that
  follows the previous one in its file, so a chunk of ``n`` lines is one number and ``n - 1``
  zeros, and its line lengths are never computed (a reader has them from the blob);
- the fields frame is columnar (``wharf._fields``): field names, key sequences ("shapes"),
  each record's shape, and one typed column per name. There is no ``fields_len`` column.

A reader takes both versions (``VERSIONS``); ``build`` writes version 2 unless told
otherwise, and ``convert`` rewrites a batch into the other version, records unchanged (a
shipper does so for a collector that announces only version 1).
"""

from __future__ import annotations

import operator
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any, Final

import msgspec
import zstandard

from parsers import FieldColumns
from wharf._build import Part, Run, build, build_parts
from wharf._columns import from_le, undo_zigzag_deltas, unzigzag
from wharf._fields import FieldsReader
from wharf._layout import (
    ATTR_MULTILINE,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    KNOWN_ATTRS,
    LEVEL_NAME,
    MAGIC,
    MAX_BATCH_BYTES,
    MAX_COLUMNS_BYTES,
    MAX_DICT_ENTRIES,
    MAX_FIELDS_BYTES,
    MAX_LINES_BYTES,
    MAX_META_BYTES,
    MAX_RECORDS,
    PREFIX_SIZE,
    VERSION,
    VERSION_AT,
    VERSIONS,
    Columns,
    ColumnsV2,
    Span,
    cctx,
    cols_dec,
    cols_v2_dec,
    dctx,
    meta_dec,
    meta_enc,
)
from wharf.errors import BatchTooLarge, CorruptBatch, InvalidArgument
from wharf.record import Record

__all__ = [
    "ATTR_MULTILINE",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BATCH_BYTES",
    "MAX_COLUMNS_BYTES",
    "MAX_DICT_ENTRIES",
    "MAX_FIELDS_BYTES",
    "MAX_LINES_BYTES",
    "MAX_META_BYTES",
    "MAX_RECORDS",
    "PREFIX_SIZE",
    "VERSION",
    "VERSIONS",
    "Batch",
    "FieldColumns",
    "Header",
    "Part",
    "Run",
    "Span",
    "build",
    "build_parts",
    "convert",
    "iter_batches",
    "merge",
    "peek_length",
    "read",
    "read_header",
    "recompress",
    "version_of",
    "with_offset",
]

_BASE_OFFSET = struct.Struct(">qq")
_PLUS_ONE: Final = (1).__add__
_I64_END: Final = 1 << 63
_U64: Final = (1 << 64) - 1
# Kept under their old names: bench/collector.py rewrites a meta section with them.
_meta_enc = meta_enc
_meta_dec = meta_dec
_fields_dec = msgspec.msgpack.Decoder(dict[str, Any])
_fields_list_dec = msgspec.msgpack.Decoder(list[dict[str, Any]])
_CRC_START = CRC_START


def with_offset(batch: bytes | bytearray, base_offset: int, append_ms: int) -> bytes:
    """Return ``batch`` with the collector-assigned base offset and append time filled in."""
    return _BASE_OFFSET.pack(base_offset, append_ms) + bytes(batch[16:])


def version_of(batch: bytes | bytearray | memoryview) -> int:
    """The version byte of a batch (0 if it is too short to have one); nothing is checked."""
    return batch[VERSION_AT] if len(batch) > VERSION_AT else 0


def convert(batch: bytes, version: int) -> bytes:
    """``batch`` in ``version``, with the same records, spans and producer (``batch`` itself
    when it is in that version already). ``CorruptBatch`` if it cannot be read,
    ``InvalidArgument`` for an unknown version."""
    if version not in VERSIONS:
        raise InvalidArgument(f"cannot build batch version {version} (known: 1, 2)")
    if version_of(batch) == version:
        return batch
    b = Batch(batch)
    return build(
        b.records(),
        producer_id=b.header.producer_id,
        producer_seq=b.header.producer_seq,
        spans=b.spans,
        version=version,
    )


def recompress(b: Batch, level: int) -> bytes:
    """``b``'s bytes with its three frames compressed again at zstd ``level``: the same
    header fields, meta and decompressed sections, so the same records for every reader; a new
    checksum. Sealed segments are compacted this way (``collector.storage.compaction``)."""
    h = b.header
    frames = [
        _decompress(b._frame(0), h.cols_ulen, "columns"),
        b.lines_blob(),
        _decompress(b._frame(2), h.fields_ulen, "fields"),
    ]
    ctx = cctx(level)
    cols, lines, fields = (ctx.compress(f) if f else b"" for f in frames)
    meta = memoryview(b.raw)[HEADER_SIZE : HEADER_SIZE + h.meta_len]
    body = b"".join((meta, cols, lines, fields))
    length = HEADER_SIZE - PREFIX_SIZE + len(body)
    head = HEADER.pack(
        h.base_offset, h.append_ms, length, 0, MAGIC, h.version, h.attributes, h.record_count,
        h.min_ts, h.max_ts, h.producer_id, h.producer_seq, h.meta_len,
        len(cols), h.cols_ulen, len(lines), h.lines_ulen, len(fields), h.fields_ulen,
    )  # fmt: skip
    crc = zlib.crc32(body, zlib.crc32(memoryview(head)[CRC_START:]))
    return head[:PREFIX_SIZE] + struct.pack(">I", crc) + head[CRC_START:] + body


def merge(batches: Sequence[Batch], level: int) -> bytes:
    """One batch holding the records of consecutive ``batches`` of one producer, in order,
    compressed at zstd ``level``: their spans (adjacent ones joined), the last one's producer
    sequence; base offset -1 and append time 0 until ``with_offset``. ``InvalidArgument`` for
    batches of different producers, ``BatchTooLarge`` past a batch's limits."""
    first = batches[0].header
    if any(b.header.producer_id != first.producer_id for b in batches):
        raise InvalidArgument("only batches of one producer can be merged")
    spans: list[Span] = []
    for b in batches:
        for s in b.spans:
            last = spans[-1] if spans else None
            if last is not None and last.file_id == s.file_id and last.end == s.start:
                spans[-1] = Span(s.file_id, last.start, s.end)
            else:
                spans.append(s)
    return build(
        [r for b in batches for r in b.records()],
        producer_id=first.producer_id,
        producer_seq=batches[-1].header.producer_seq,
        spans=spans,
        level=level,
    )


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
    version: int = 1

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
    if version not in VERSIONS:
        raise CorruptBatch(f"unsupported batch version {version}")
    if attrs & ~KNOWN_ATTRS:
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
        version,
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
        out: bytes = dctx().decompress(data)
    except zstandard.ZstdError as exc:
        raise CorruptBatch(f"{what} frame: {exc}") from exc
    if len(out) != expected:
        raise CorruptBatch(f"{what} frame gave {len(out)} bytes, header says {expected}")
    return out


_SIZES_V1: Final = (
    ("ts", 8),
    ("host", 4),
    ("source", 4),
    ("level", 1),
    ("file", 4),
    ("offset", 8),
    ("fields_len", 4),
)
_SIZES_V2: Final = (("ts", 8), ("host", 4), ("source", 4), ("level", 1), ("file", 4), ("offset", 8))


class Batch:
    """A read-only view of one batch. Payload frames are decompressed lazily, once each.

    ``Batch(buf)`` checks the header, the checksum and the meta section; anything wrong raises
    ``CorruptBatch`` (never another exception) with ``where`` naming the position if given.
    """

    __slots__ = (
        "_buf",
        "_cols",
        "_fields",
        "_fields_reader",
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
                crc = zlib.crc32(memoryview(buf)[CRC_START:])
                if crc != h.crc:
                    raise CorruptBatch(f"checksum mismatch (stored {h.crc:#010x}, got {crc:#010x})")
            pos = HEADER_SIZE
            try:
                meta = meta_dec.decode(memoryview(buf)[pos : pos + h.meta_len])
            except (msgspec.DecodeError, ValueError) as exc:
                raise CorruptBatch(f"meta section: {exc}") from exc
        except CorruptBatch as exc:
            if where and not exc.where:
                raise type(exc)(exc.reason, where) from exc
            raise
        self.header = h
        self._buf = buf
        self._meta = meta
        self._cols: Columns | ColumnsV2 | None = None
        self._lines: bytes | None = None
        self._fields: bytes | None = None
        self._fields_reader: FieldsReader | None = None
        self._stops: list[int] | None = None

    # -- header and meta ------------------------------------------------------------------

    @property
    def raw(self) -> bytes:
        """The batch bytes as stored."""
        return self._buf

    @property
    def version(self) -> int:
        """The format version (1 or 2)."""
        return self.header.version

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

    def columns(self) -> Columns | ColumnsV2:
        """Decode the columns frame and check it against the header."""
        if self._cols is None:
            h = self.header
            raw = _decompress(self._frame(0), h.cols_ulen, "columns")
            try:
                cols: Columns | ColumnsV2 = (cols_dec if h.version == 1 else cols_v2_dec).decode(
                    raw
                )
            except (msgspec.DecodeError, ValueError) as exc:
                raise CorruptBatch(f"columns: {exc}") from exc
            n = h.record_count
            sizes = _SIZES_V1 if h.version == 1 else _SIZES_V2
            line_len = 4 if h.attributes & ATTR_MULTILINE else 0
            for name, size in (*sizes, ("line_len", line_len)):
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
                lens = from_le("I", self.columns().line_len, n, "line_len")
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
        codes = from_le("Q", self.columns().ts, self.header.record_count, "ts")
        return undo_zigzag_deltas(codes, self.header.min_ts)

    def host_indexes(self) -> array[int]:
        """Each record's index into ``hosts``."""
        return from_le("I", self.columns().host, self.header.record_count, "host")

    def source_indexes(self) -> array[int]:
        """Each record's index into ``sources``."""
        return from_le("I", self.columns().source, self.header.record_count, "source")

    def offsets(self) -> list[int]:
        """Each record's origin offset."""
        n = self.header.record_count
        codes = from_le("Q", self.columns().offset, n, "offset")
        if self.header.version == 1:
            return undo_zigzag_deltas(codes, 0)
        # offset[i] = the deltas up to i + where line i - 1 ended, in the blob's terms.
        starts = [0, *self.line_stops()[:-1]]
        out = list(map(operator.add, accumulate(unzigzag(codes)), starts))
        if min(out) < -_I64_END or max(out) >= _I64_END:
            out = [((o + _I64_END) & _U64) - _I64_END for o in out]
        return out

    def _lines_list(self) -> list[bytes]:
        if self.flat:
            return self._flat_lines()
        blob, stops = self.lines_blob(), self.line_stops()
        return [blob[a:b] for a, b in zip([0, *stops], [s - 1 for s in stops], strict=False)]

    def _field_dicts(self, idx: Sequence[int]) -> list[dict[str, Any]]:
        """The fields of the records at ``idx`` (both versions)."""
        h = self.header
        if not h.fields_ulen:
            return [{} for _ in idx]
        if h.version == 2:
            reader = self._fields_v2()
            return reader.at(idx) if len(idx) < h.record_count else reader.all()
        flen = from_le("I", self.columns().fields_len, h.record_count, "fields_len")  # type: ignore[union-attr]
        at = self._fields_positions(flen)
        blob = memoryview(self._fields_blob())
        out: list[dict[str, Any]] = []
        for i in idx:
            fl = flen[i]
            out.append(_fields_dec.decode(blob[at[i] : at[i] + fl]) if fl else {})
        return out

    def records(self, indexes: Iterable[int] | None = None) -> list[Record]:
        """Materialize the records at ``indexes`` (all by default), in the order given."""
        n = self.header.record_count
        idx: Sequence[int] = range(n) if indexes is None else list(indexes)
        cols = self.columns()
        try:
            lines = self._lines_list()
            ts = self.timestamps()
            host = from_le("I", cols.host, n, "host")
            source = from_le("I", cols.source, n, "source")
            file = from_le("I", cols.file, n, "file")
            offset = self.offsets()
            levels = cols.level
            hosts, sources, files = self._meta.hosts, self._meta.sources, cols.file_ids
            if idx and (min(idx) < -n or max(idx) >= n):
                raise IndexError("record index out of range")
            fields = self._field_dicts(idx)
            return [
                Record(
                    ts=ts[i],
                    line=lines[i].decode("utf-8", "surrogatepass"),
                    host=hosts[host[i]],
                    source=sources[source[i]],
                    fields=f,
                    level=LEVEL_NAME[levels[i]],
                    file_id=files[file[i]],
                    offset=offset[i],
                )
                for i, f in zip(idx, fields, strict=True)
            ]
        except (IndexError, UnicodeDecodeError, msgspec.DecodeError, ValueError) as exc:
            raise CorruptBatch(f"record payload: {exc}") from exc

    def validate(self) -> None:
        """Check everything a reader relies on (a collector does this before storing a batch
        from the network, so readers can trust what is on disk), without materializing records.

        Lines: the blob is UTF-8 and, for a flat batch, holds exactly ``count - 1`` newlines
        (one C-level count; multiline batches check their length column). Columns: sizes, and
        every index within its dictionary. Fields: version 1 decodes every map; version 2
        checks the columnar structure, decodes each string column's blob once and decodes only
        the untyped columns (``wharf._fields``).
        """
        n = len(self)
        blob = self.lines_blob()
        newlines = blob.count(b"\n")
        if self.flat:
            if newlines != n - 1:
                raise CorruptBatch(
                    f"{newlines + 1} lines in the blob for {n} records "
                    "(the batch says no line holds a newline)"
                )
        else:
            self.line_stops()
            if newlines == n - 1:
                raise CorruptBatch("attributes disagree with the lines about embedded newlines")
        if not blob.isascii():
            try:
                blob.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise CorruptBatch(f"lines: {exc}") from exc
        cols = self.columns()
        for name, limit in (
            ("host", len(self.hosts)),
            ("source", len(self.sources)),
            ("file", len(cols.file_ids)),
        ):
            data = getattr(cols, name)
            # All zeros (one host, one source, one file: the common case) needs no decoding.
            if not limit or (
                data.count(0) != len(data) and max(from_le("I", data, n, name)) >= limit
            ):
                raise CorruptBatch(f"column {name} points past its dictionary of {limit}")
        if cols.level and max(cols.level) >= len(LEVEL_NAME):
            raise CorruptBatch("unknown level code")
        if self.header.version == 2:
            if self.header.fields_ulen:
                self._fields_v2().validate()
            return
        flen = from_le("I", cols.fields_len, n, "fields_len")  # type: ignore[union-attr]
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

    def _fields_v2(self) -> FieldsReader:
        if self._fields_reader is None:
            self._fields_reader = FieldsReader(self._fields_blob(), self.header.record_count)
        return self._fields_reader

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
