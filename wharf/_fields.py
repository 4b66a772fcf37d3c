"""The columnar fields section of a version-2 batch: one column per field name.

A record's ``fields`` is a dict. Version 1 stored each dict as its own msgpack map, so building
a batch encoded one map per record and checking one decoded every map. Version 2 stores them
the way a columnar file does (Parquet, Arrow): the distinct field names (``keys``), the
distinct key sequences (``shapes``: which names a record has, in its dict's order), each
record's shape, and for every name one column with the values of the records that have it, in
record order. A column is typed when its values are:

- ``LINES``: every value a ``str`` without a newline (an access log's fields, most
  fields): the values joined by ``\\n``, in UTF-8 (the reader decodes and splits it once);
- ``STR``: every value a ``str``, some with a newline: the values' UTF-8 back to back (one
  blob) and each value's length in code points (the reader decodes the blob once and slices
  it);
- ``INT``: every value an ``int`` (not ``bool``) in the int64 range: int64, byte-shuffled;
- ``FLOAT``: every value a ``float``: float64, byte-shuffled;
- ``ANY``: anything else (mixed types, nested lists and maps, ``None``, ``bool``): a msgpack
  array of the values.

Checking a typed column is a length check (and one UTF-8 decode of a string blob); only
``ANY`` columns are decoded value by value. A record's dict is rebuilt with its keys in the
order its shape lists them, so field order survives the round trip.

Pure: no I/O. ``FieldsWriter`` builds the section; ``FieldsReader`` checks and reads it.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import accumulate, repeat
from typing import Any, Final

import msgspec

from parsers import FieldColumns
from wharf._columns import from_le, from_le_floats, le
from wharf.errors import CorruptBatch, InvalidArgument

ANY: Final = 0
STR: Final = 1
INT: Final = 2
FLOAT: Final = 3
LINES: Final = 4
_KINDS: Final = (ANY, STR, INT, FLOAT, LINES)
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
# Past this many shapes a record's shape code does not fit a byte: random access then goes
# through one pass over the whole section instead of byte counts (see ``FieldsReader``).
_BYTE_SHAPES: Final = 256


class _Column(msgspec.Struct, array_like=True, frozen=True):
    kind: int
    count: int
    data: bytes  # see the module docstring, by kind
    lengths: bytes  # STR: uint32 code points per value, shuffled; else empty


class _Section(msgspec.Struct, array_like=True, frozen=True):
    keys: list[str]
    shapes: list[list[int]]
    shape: bytes  # uint32 per record: its index into shapes, shuffled
    columns: list[_Column]  # one per key, same order


_enc = msgspec.msgpack.Encoder()
_section_dec = msgspec.msgpack.Decoder(_Section)
_any_dec = msgspec.msgpack.Decoder(list[Any])


class FieldsWriter:
    """Accumulates the fields of records in order; ``encode`` gives the section's bytes."""

    __slots__ = ("_codes", "_keys", "_shape_index", "_shapes", "_values", "any_fields")

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._values: list[list[Any]] = []
        self._shape_index: dict[tuple[str, ...], int] = {}
        self._shapes: list[tuple[str, ...]] = []
        self._codes: array[int] = array("I")
        self.any_fields = False  # whether some record has a field (else no section at all)

    def _shape(self, names: tuple[str, ...]) -> int:
        i = self._shape_index.get(names)
        if i is None:
            i = self._shape_index[names] = len(self._shapes)
            self._shapes.append(names)
            for name in names:
                if name not in self._keys:
                    self._keys[name] = len(self._values)
                    self._values.append([])
        return i

    def add_empty(self, count: int) -> None:
        """``count`` records without fields."""
        code = self._shape(())
        self._codes.extend(array("I", [code]) * count)

    def add_dicts(self, dicts: Iterable[dict[str, Any]]) -> None:
        """Records' fields, one dict each (the per-record path)."""
        shape_index, keys, values = self._shape_index, self._keys, self._values
        codes = self._codes
        for d in dicts:
            names = tuple(d)
            code = shape_index.get(names)
            if code is None:
                code = self._shape(names)
            codes.append(code)
            if names:
                self.any_fields = True
                for name, value in d.items():
                    values[keys[name]].append(value)

    def add_columns(self, fc: FieldColumns) -> None:
        """Records' fields, by column."""
        remap = [self._shape(names) for names in fc.shapes]
        self._codes.extend(array("I", map(remap.__getitem__, fc.codes)))
        for name, vals in fc.values.items():
            if vals:
                self.any_fields = True
                self._values[self._keys[name]].extend(vals)

    def encode(self) -> bytes:
        """The section (``b""`` when no record has a field)."""
        if not self.any_fields:
            return b""
        keys = list(self._keys)
        index = self._keys
        columns = [_column(vals, name) for name, vals in zip(keys, self._values, strict=True)]
        section = _Section(
            keys,
            [[index[name] for name in names] for names in self._shapes],
            le("I", self._codes),
            columns,
        )
        try:
            return _enc.encode(section)
        except (msgspec.EncodeError, TypeError, OverflowError, UnicodeEncodeError) as exc:
            raise InvalidArgument(f"fields cannot be encoded: {exc}") from exc


def _column(vals: list[Any], name: str) -> _Column:
    n = len(vals)
    try:
        text = "\n".join(vals)  # only strings join: the type check comes free
    except TypeError:
        pass
    else:
        data = text.encode("utf-8", "surrogatepass")
        if n and data.count(b"\n") == n - 1:
            return _Column(LINES, n, data, b"")
        return _Column(
            STR, n, "".join(vals).encode("utf-8", "surrogatepass"), le("I", map(len, vals))
        )
    types = set(map(type, vals))
    if types == {int} and min(vals) >= _I64_MIN and max(vals) <= _I64_MAX:
        return _Column(INT, n, le("q", vals), b"")
    if types == {float}:
        return _Column(FLOAT, n, le("d", vals), b"")
    try:
        return _Column(ANY, n, _enc.encode(vals), b"")
    except (msgspec.EncodeError, TypeError, OverflowError, UnicodeEncodeError) as exc:
        raise InvalidArgument(f"field {name!r} cannot be encoded: {exc}") from exc


class FieldsReader:
    """The fields section of a batch of ``count`` records, checked on construction (every
    structure a reader relies on; values of typed columns need no decoding to be trusted,
    ``ANY`` columns are decoded by ``validate``)."""

    __slots__ = ("_codes", "_count", "_section", "_shape_bytes", "_shape_names", "_values")

    def __init__(self, raw: bytes, count: int) -> None:
        try:
            section = _section_dec.decode(raw)
        except (msgspec.DecodeError, ValueError) as exc:
            raise CorruptBatch(f"fields section: {exc}") from exc
        keys = section.keys
        if len(set(keys)) != len(keys):
            raise CorruptBatch("fields section names a key twice")
        if len(section.columns) != len(keys):
            raise CorruptBatch(f"{len(section.columns)} field columns for {len(keys)} keys")
        nkeys = len(keys)
        for shape in section.shapes:
            if len(set(shape)) != len(shape) or (
                shape and not 0 <= min(shape) <= max(shape) < nkeys
            ):
                raise CorruptBatch(f"field shape {shape} is not a set of key indexes")
        codes = from_le("I", section.shape, count, "field shape")
        if count and max(codes) >= len(section.shapes):
            raise CorruptBatch("a record's field shape points past the shapes")
        per_shape = Counter(codes)
        expected = [0] * nkeys
        for code, n in per_shape.items():
            for k in section.shapes[code]:
                expected[k] += n
        for name, col, want in zip(keys, section.columns, expected, strict=True):
            if col.kind not in _KINDS:
                raise CorruptBatch(f"field column {name!r} has unknown kind {col.kind}")
            if col.count != want:
                raise CorruptBatch(
                    f"field column {name!r} has {col.count} values, its records need {want}"
                )
            if col.kind == STR:
                from_le("I", col.lengths, want, f"field {name!r} lengths")
            elif col.kind in (INT, FLOAT):
                if len(col.data) != 8 * want:
                    raise CorruptBatch(f"field column {name!r} has {len(col.data)} bytes")
            elif col.lengths:
                raise CorruptBatch(f"field column {name!r} has lengths it cannot use")
            elif col.kind == LINES and not want:
                raise CorruptBatch(f"field column {name!r} has lines for no value")
        self._section = section
        self._count = count
        self._codes = codes
        self._shape_names = [tuple(keys[k] for k in shape) for shape in section.shapes]
        self._shape_bytes: bytes | None = None
        self._values: list[list[Any] | None] = [None] * nkeys

    def validate(self) -> None:
        """Decode what the constructor could not check by sizes: each string blob (UTF-8, and
        its lengths or newlines add up) and each ``ANY`` column (a msgpack array of the right
        length)."""
        for name, col in zip(self._section.keys, self._section.columns, strict=True):
            if col.kind == STR:
                self._text(col, name)
            elif col.kind == LINES:
                self._decoded(col, name)
            elif col.kind == ANY:
                self._any(col, name)

    def _decoded(self, col: _Column, name: str) -> str:
        """A ``LINES`` column's text, checked: UTF-8, ``count - 1`` newlines."""
        try:
            text = col.data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise CorruptBatch(f"field column {name!r}: {exc}") from exc
        if text.count("\n") != col.count - 1:
            raise CorruptBatch(f"field column {name!r}: {col.count} values, not as many lines")
        return text

    def _text(self, col: _Column, name: str) -> tuple[str, array[int]]:
        """A string column's text and lengths, checked: UTF-8, and the lengths add up (one
        decode and one C-level sum, whatever the number of values)."""
        try:
            text = col.data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise CorruptBatch(f"field column {name!r}: {exc}") from exc
        lengths = from_le("I", col.lengths, col.count, f"field {name!r} lengths")
        if sum(lengths) != len(text):
            raise CorruptBatch(f"field column {name!r}: lengths do not add up to its text")
        return text, lengths

    def _strings(self, col: _Column, name: str) -> list[str]:
        text, lengths = self._text(col, name)
        ends = list(accumulate(lengths))
        return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))

    def _any(self, col: _Column, name: str) -> list[Any]:
        try:
            vals = _any_dec.decode(col.data)
        except (msgspec.DecodeError, ValueError) as exc:
            raise CorruptBatch(f"field column {name!r}: {exc}") from exc
        if len(vals) != col.count:
            raise CorruptBatch(f"field column {name!r} holds {len(vals)} of {col.count} values")
        return vals

    def _column(self, k: int) -> list[Any]:
        vals = self._values[k]
        if vals is None:
            col, name = self._section.columns[k], self._section.keys[k]
            if col.kind == LINES:
                vals = self._decoded(col, name).split("\n")
            elif col.kind == STR:
                vals = self._strings(col, name)
            elif col.kind == INT:
                vals = list(from_le("q", col.data, col.count, name))
            elif col.kind == FLOAT:
                vals = list(from_le_floats(col.data, col.count, name))
            else:
                vals = self._any(col, name)
            self._values[k] = vals
        return vals

    def all(self) -> list[dict[str, Any]]:
        """Every record's fields, in record order."""
        keys = self._section.keys
        iters = {keys[k]: iter(self._column(k)) for k in range(len(keys))}
        names = self._shape_names
        return [{name: next(iters[name]) for name in names[code]} for code in self._codes]

    def at(self, indexes: Sequence[int]) -> list[dict[str, Any]]:
        """The fields of the records at ``indexes`` (any order, repeats allowed)."""
        if not indexes:
            return []
        if len(indexes) * 16 >= self._count or len(self._shape_names) > _BYTE_SHAPES:
            every = self.all()
            return [every[i] for i in indexes]
        if self._shape_bytes is None:
            self._shape_bytes = array("B", self._codes).tobytes()
        shape_bytes = self._shape_bytes
        keys = self._section.keys
        key_index = {name: k for k, name in enumerate(keys)}
        # Which shapes hold each key: a record's position in a key's column is the number of
        # records before it whose shape holds the key, counted by C-level byte counts.
        holders: dict[str, list[bytes]] = {name: [] for name in keys}
        for code, shape in enumerate(self._section.shapes):
            for k in shape:
                holders[keys[k]].append(bytes((code,)))
        out: list[dict[str, Any]] = []
        for i in indexes:
            row: dict[str, Any] = {}
            for name in self._shape_names[self._codes[i]]:
                rank = sum(map(shape_bytes.count, holders[name], repeat(0), repeat(i)))
                row[name] = self._column(key_index[name])[rank]
            out.append(row)
        return out
