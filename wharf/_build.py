"""Building batches: from records (any producer) or from ``Run``s (the shipper's zero-copy
path), in version 2 or, for collectors that read only it, version 1.

A ``Run`` is what a file reader has after it found that a chunk of a file holds whole lines
that need no repair (no ``\\r``, valid UTF-8, none over the length limit): the chunk's bytes,
up to its last newline, *are* the lines blob of the batch. Building from runs costs a few
C-level operations per run, whatever its number of lines: no per-line Python object, no
join, no re-encoding (see ``wharf.batch`` for the layout that makes this possible).
"""

from __future__ import annotations

import operator
import struct
import zlib
from array import array
from collections.abc import Sequence
from itertools import repeat
from typing import Any, Final

import msgspec

from parsers import FieldColumns
from wharf._columns import le, zigzag, zigzag_deltas
from wharf._fields import FieldsWriter
from wharf._layout import (
    ATTR_MULTILINE,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LEVEL_CODE,
    MAGIC,
    MAX_BATCH_BYTES,
    MAX_DICT_ENTRIES,
    MAX_FIELDS_BYTES,
    MAX_LINES_BYTES,
    MAX_META_BYTES,
    MAX_RECORDS,
    PREFIX_SIZE,
    VERSION,
    Columns,
    ColumnsV2,
    Dictionary,
    Meta,
    Span,
    cctx,
    meta_enc,
)
from wharf.errors import BatchTooLarge, InvalidArgument
from wharf.record import Record

_LEVEL_ANY: Final[dict[str | None, int]] = {None: 0}
_LEVEL_ANY.update(LEVEL_CODE)
_fields_enc = msgspec.msgpack.Encoder()


class Run:
    """``count`` consecutive records of one file, read as whole lines.

    ``blob`` is the lines joined by ``\\n`` (the file's bytes from ``offset`` up to, not
    including, the newline that ends the last line): valid UTF-8, no ``\\r``, so record ``i``'s
    line is the ``i``-th piece of ``blob.split(b"\\n")`` and starts in the file right after the
    previous one's newline. ``ts`` is one time for all (the read time) or one per record
    (parsed); ``levels`` and ``fields`` are per record, or ``None`` for "none" and "empty".
    The builder trusts these invariants (the collector checks the batch it gets).

    ``unparsed``, when set, says the lines are still to be parsed, and with what (opaque here:
    a producer that parses in another process marks runs so, ``ts`` then being the time for
    lines without one); splitting keeps it, and ``build_parts`` refuses such a run.
    """

    __slots__ = (
        "blob",
        "count",
        "fields",
        "file_id",
        "host",
        "levels",
        "offset",
        "source",
        "ts",
        "unparsed",
    )

    def __init__(
        self,
        blob: bytes,
        count: int,
        offset: int,
        *,
        ts: int | Sequence[int],
        host: str,
        source: str,
        file_id: str,
        levels: Sequence[str | None] | None = None,
        fields: FieldColumns | None = None,
        unparsed: object = None,
    ) -> None:
        self.blob = blob
        self.count = count
        self.offset = offset
        self.ts = ts
        self.host = host
        self.source = source
        self.file_id = file_id
        self.levels = levels
        self.fields = fields
        self.unparsed = unparsed

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"<Run {self.file_id}@{self.offset} {self.count} lines, {len(self.blob)} bytes>"

    @property
    def end(self) -> int:
        """The file offset right after the last line's newline."""
        return self.offset + len(self.blob) + 1

    def lines_for(self, nbytes: int) -> int:
        """How many records, from the first, it takes to cover ``nbytes`` bytes of the file
        (newlines included): the count whose last line reaches byte ``nbytes`` (all of them if
        the run is shorter)."""
        if nbytes <= 0:
            return 1
        p = self.blob.find(b"\n", nbytes - 1)
        return self.count if p < 0 else self.blob.count(b"\n", 0, p) + 1

    def split(self, k: int) -> tuple[Run, Run]:
        """The first ``k`` records (0 < k < count) and the rest, as two runs."""
        if not 0 < k < self.count:
            raise ValueError(f"cannot split a run of {self.count} records at {k}")
        pieces = self.blob.split(b"\n", k)
        cut = sum(map(len, pieces[:k])) + k - 1  # the newline that ends line k - 1
        ts, levels, fields = self.ts, self.levels, self.fields
        head_fields, rest_fields = fields.split(k) if fields is not None else (None, None)
        kw: dict[str, Any] = {
            "host": self.host,
            "source": self.source,
            "file_id": self.file_id,
            "unparsed": self.unparsed,
        }
        head = Run(
            self.blob[:cut],
            k,
            self.offset,
            ts=ts if isinstance(ts, int) else ts[:k],
            levels=None if levels is None else levels[:k],
            fields=head_fields,
            **kw,
        )
        rest = Run(
            pieces[k],
            self.count - k,
            self.offset + cut + 1,
            ts=ts if isinstance(ts, int) else ts[k:],
            levels=None if levels is None else levels[k:],
            fields=rest_fields,
            **kw,
        )
        return head, rest

    def texts(self) -> list[str]:
        """Each record's line."""
        return self.blob.decode("utf-8").split("\n")

    def records(self) -> list[Record]:
        """The run as records (the per-record path: version 1, tests)."""
        texts = self.texts()
        offsets = [self.offset]
        for text in texts[:-1]:
            offsets.append(offsets[-1] + len(text.encode("utf-8")) + 1)
        n = self.count
        ts = [self.ts] * n if isinstance(self.ts, int) else list(self.ts)
        levels = [None] * n if self.levels is None else list(self.levels)
        fields: list[dict[str, Any]] = (
            [{} for _ in range(n)] if self.fields is None else self.fields.dicts()
        )
        return [
            Record(
                ts=t,
                line=text,
                host=self.host,
                source=self.source,
                fields=f,
                level=lv,
                file_id=self.file_id,
                offset=o,
            )
            for t, text, f, lv, o in zip(ts, texts, fields, levels, offsets, strict=True)
        ]


Part = Run | Sequence[Record]


def build(
    records: Sequence[Record],
    *,
    producer_id: bytes = bytes(16),
    producer_seq: int = 0,
    spans: Sequence[Span] = (),
    level: int = 3,
    version: int = VERSION,
) -> bytes:
    """Encode ``records`` into a batch (base offset -1, append time 0) of ``version``.

    Raises ``InvalidArgument`` for an empty batch, a malformed producer id, an unknown version
    or values that cannot be encoded, and ``BatchTooLarge`` when a limit is exceeded.
    """
    return build_parts(
        [records],
        producer_id=producer_id,
        producer_seq=producer_seq,
        spans=spans,
        level=level,
        version=version,
    )


def build_parts(
    parts: Sequence[Part],
    *,
    producer_id: bytes = bytes(16),
    producer_seq: int = 0,
    spans: Sequence[Span] = (),
    level: int = 3,
    version: int = VERSION,
) -> bytes:
    """``build`` for a sequence of parts, each a ``Run`` or a sequence of records, whose
    records follow each other in the batch in that order."""
    parts = [p for p in parts if len(p)]
    if any(isinstance(p, Run) and p.unparsed is not None for p in parts):
        raise InvalidArgument("a run of lines still to be parsed cannot be built")
    n = sum(map(len, parts))
    if n == 0:
        raise InvalidArgument("a batch needs at least one record")
    if n > MAX_RECORDS:
        raise BatchTooLarge(f"{n} records exceed MAX_RECORDS={MAX_RECORDS}")
    if len(producer_id) != 16:
        raise InvalidArgument(f"producer_id must be 16 bytes, got {len(producer_id)}")
    if version == 1:
        records: list[Record] = []
        for p in parts:
            records += p.records() if isinstance(p, Run) else p
        return _build_v1(records, producer_id, producer_seq, spans, level)
    if version != 2:
        raise InvalidArgument(f"cannot build batch version {version} (known: 1, 2)")
    return _build_v2(parts, n, producer_id, producer_seq, spans, level)


def _ts_range(parts: Sequence[Part]) -> tuple[int, int]:
    lows: list[int] = []
    highs: list[int] = []
    for p in parts:
        if isinstance(p, Run):
            if isinstance(p.ts, int):
                lows.append(p.ts)
                highs.append(p.ts)
            else:
                lows.append(min(p.ts))
                highs.append(max(p.ts))
        else:
            ts = [r.ts for r in p]
            lows.append(min(ts))
            highs.append(max(ts))
    lo, hi = min(lows), max(highs)
    if lo < -(2**63) or hi >= 2**63:
        raise InvalidArgument(f"record ts outside the 64-bit range: {lo}..{hi}")
    return lo, hi


def _zeros(arr: array[int], count: int) -> None:
    """Append ``count`` zeros to ``arr`` (one C-level fill)."""
    if count > 0:
        arr.frombytes(bytes(arr.itemsize * count))


def _build_v2(
    parts: Sequence[Part],
    n: int,
    producer_id: bytes,
    producer_seq: int,
    spans: Sequence[Span],
    level: int,
) -> bytes:
    min_ts, max_ts = _ts_range(parts)
    hosts, sources, files = Dictionary(), Dictionary(), Dictionary()
    ts_col: array[int] = array("Q")
    host_col: array[int] = array("I")
    source_col: array[int] = array("I")
    file_col: array[int] = array("I")
    off_col: array[int] = array("Q")
    level_col = bytearray()
    blobs: list[bytes] = []
    line_lens: list[Run | list[int]] = []  # per part, for ATTR_MULTILINE
    multiline = False
    fw = FieldsWriter()
    prev_ts, expect = min_ts, 0
    try:
        for p in parts:
            if isinstance(p, Run):
                c = p.count
                if isinstance(p.ts, int):
                    ts_col.extend(zigzag([p.ts - prev_ts]))
                    _zeros(ts_col, c - 1)
                    prev_ts = p.ts
                else:
                    ts_col.extend(zigzag_deltas(p.ts, prev_ts))
                    prev_ts = p.ts[-1]
                host_col.extend(array("I", [hosts.code(p.host)]) * c)
                source_col.extend(array("I", [sources.code(p.source)]) * c)
                file_col.extend(array("I", [files.code(p.file_id)]) * c)
                level_col += (
                    bytes(c)
                    if p.levels is None
                    else bytes(map(_LEVEL_ANY.get, p.levels, repeat(0)))
                )
                off_col.extend(zigzag([p.offset - expect]))
                _zeros(off_col, c - 1)
                expect = p.end
                blobs.append(p.blob)
                line_lens.append(p)  # lengths only needed when some other part is multiline
                if p.fields is None:
                    fw.add_empty(c)
                else:
                    fw.add_columns(p.fields)
            else:
                c = len(p)
                ts = [r.ts for r in p]
                ts_col.extend(zigzag_deltas(ts, prev_ts))
                prev_ts = ts[-1]
                host_col.extend(hosts.codes([r.host for r in p]))
                source_col.extend(sources.codes([r.source for r in p]))
                file_col.extend(files.codes([r.file_id for r in p]))
                level_col += bytes(map(_LEVEL_ANY.get, [r.level for r in p], repeat(0)))
                texts = [r.line for r in p]
                blob = "\n".join(texts).encode("utf-8", "surrogatepass")
                if blob.count(b"\n") == c - 1:
                    lens = list(map(len, blob.split(b"\n")))
                else:
                    multiline = True
                    lens = [
                        len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))
                        for s in texts
                    ]
                offs = [r.offset for r in p]
                expects = [
                    expect,
                    *map(operator.add, offs[:-1], map(operator.add, lens, repeat(1))),
                ]
                off_col.extend(zigzag(list(map(operator.sub, offs, expects))))
                expect = offs[-1] + lens[-1] + 1
                blobs.append(blob)
                line_lens.append(lens)
                fw.add_dicts([r.fields for r in p])
    except OverflowError as exc:
        raise InvalidArgument(f"a record value is out of range: {exc}") from exc
    if max(len(hosts.values), len(sources.values), len(files.values)) > MAX_DICT_ENTRIES:
        raise BatchTooLarge(f"more than MAX_DICT_ENTRIES={MAX_DICT_ENTRIES} distinct values")
    lines_raw = b"\n".join(blobs)
    if len(lines_raw) > MAX_LINES_BYTES:
        raise BatchTooLarge(f"{len(lines_raw)} bytes of lines exceed MAX_LINES_BYTES")
    len_col: array[int] = array("I")
    if multiline:
        for lens_or_run in line_lens:
            if isinstance(lens_or_run, Run):
                len_col.extend(map(len, lens_or_run.blob.split(b"\n")))
            else:
                len_col.extend(lens_or_run)
    fields_raw = fw.encode()
    cols = ColumnsV2(
        ts=le("Q", ts_col),
        host=le("I", host_col),
        source=le("I", source_col),
        level=bytes(level_col),
        line_len=le("I", len_col),
        file=le("I", file_col),
        offset=le("Q", off_col),
        file_ids=files.values,
    )
    return _assemble(
        2,
        ATTR_MULTILINE if multiline else 0,
        n,
        min_ts,
        max_ts,
        producer_id,
        producer_seq,
        Meta(list(spans), hosts.values, sources.values),
        msgspec.msgpack.encode(cols),
        lines_raw,
        fields_raw,
        level,
    )


def _build_v1(
    records: Sequence[Record],
    producer_id: bytes,
    producer_seq: int,
    spans: Sequence[Span],
    level: int,
) -> bytes:
    """Version 1, byte for byte as it was built before version 2 existed."""
    n = len(records)
    hosts, sources, files = Dictionary(), Dictionary(), Dictionary()
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
    try:
        for r in records:
            if r.fields:
                blob = _fields_enc.encode(r.fields)
                field_blobs.append(blob)
                fields_len.append(len(blob))
            else:
                fields_len.append(0)
    except (msgspec.EncodeError, TypeError, UnicodeEncodeError) as exc:
        raise InvalidArgument(f"fields cannot be encoded: {exc}") from exc
    levels = [r.level for r in records]
    try:
        cols = Columns(
            ts=le("Q", zigzag_deltas(ts_list, min_ts)),
            host=le("I", hosts.codes([r.host for r in records])),
            source=le("I", sources.codes([r.source for r in records])),
            level=bytes(len(levels))
            if levels.count(None) == len(levels)
            else bytes(LEVEL_CODE.get(lv, 0) if lv else 0 for lv in levels),
            line_len=le("I", line_len),
            file=le("I", files.codes([r.file_id for r in records])),
            offset=le("Q", zigzag_deltas([r.offset for r in records], 0)),
            fields_len=le("I", fields_len),
            file_ids=files.values,
        )
    except OverflowError as exc:
        raise InvalidArgument(f"a record value is out of range: {exc}") from exc
    if max(len(hosts.values), len(sources.values), len(files.values)) > MAX_DICT_ENTRIES:
        raise BatchTooLarge(f"more than MAX_DICT_ENTRIES={MAX_DICT_ENTRIES} distinct values")
    if len(lines_raw) > MAX_LINES_BYTES:
        raise BatchTooLarge(f"{len(lines_raw)} bytes of lines exceed MAX_LINES_BYTES")
    return _assemble(
        1,
        attrs,
        n,
        min_ts,
        max_ts,
        producer_id,
        producer_seq,
        Meta(list(spans), hosts.values, sources.values),
        msgspec.msgpack.encode(cols),
        lines_raw,
        b"".join(field_blobs),
        level,
    )


def _assemble(
    version: int,
    attrs: int,
    n: int,
    min_ts: int,
    max_ts: int,
    producer_id: bytes,
    producer_seq: int,
    meta_obj: Meta,
    cols_raw: bytes,
    lines_raw: bytes,
    fields_raw: bytes,
    level: int,
) -> bytes:
    """Compress the frames, fill in the header, checksum."""
    if len(fields_raw) > MAX_FIELDS_BYTES:
        raise BatchTooLarge(f"{len(fields_raw)} bytes of fields exceed MAX_FIELDS_BYTES")
    meta = meta_enc.encode(meta_obj)
    if len(meta) > MAX_META_BYTES:
        raise BatchTooLarge(f"{len(meta)} bytes of meta exceed MAX_META_BYTES")
    ctx = cctx(level)
    cols_z = ctx.compress(cols_raw)
    lines_z = ctx.compress(lines_raw)
    fields_z = ctx.compress(fields_raw) if fields_raw else b""
    body = b"".join((meta, cols_z, lines_z, fields_z))
    if HEADER_SIZE + len(body) > MAX_BATCH_BYTES:
        raise BatchTooLarge(f"{HEADER_SIZE + len(body)} bytes exceed MAX_BATCH_BYTES")
    try:
        fixed = HEADER.pack(
            -1,
            0,
            HEADER_SIZE - PREFIX_SIZE + len(body),
            0,
            MAGIC,
            version,
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
    except struct.error as exc:  # a producer_seq outside int64
        raise InvalidArgument(f"a header value is out of range: {exc}") from exc
    crc = zlib.crc32(body, zlib.crc32(fixed[CRC_START:]))
    return fixed[:20] + crc.to_bytes(4, "big") + fixed[CRC_START:] + body
