"""Records' fields by column, and what a block parser returns (``parsers.columnar``).

Kept apart from the block parsers so that ``wharf.batch``, which stores fields in this shape,
imports no parser.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec

__all__ = ["Block", "FieldColumns"]


class FieldColumns(msgspec.Struct, frozen=True, gc=False):
    """The fields of ``len(codes)`` consecutive records, by column: record ``i`` has the keys
    ``shapes[codes[i]]``, in that order, and its value for key ``k`` is the next unused one
    of ``values[k]`` (values in record order, only for the records that have the key)."""

    shapes: list[tuple[str, ...]]
    codes: Sequence[int]
    values: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def constant(cls, fields: dict[str, Any], count: int) -> FieldColumns:
        """``count`` records that all have ``fields``."""
        return cls(
            [tuple(fields)],
            array("I", bytes(4 * count)),
            {k: [v] * count for k, v in fields.items()},
        )

    @classmethod
    def from_dicts(cls, dicts: Iterable[dict[str, Any]]) -> FieldColumns:
        """Records' fields given one dict each (the per-line path)."""
        index: dict[tuple[str, ...], int] = {}
        shapes: list[tuple[str, ...]] = []
        codes: array[int] = array("I")
        values: dict[str, list[Any]] = {}
        for d in dicts:
            names = tuple(d)
            code = index.get(names)
            if code is None:
                code = index[names] = len(shapes)
                shapes.append(names)
                for name in names:
                    values.setdefault(name, [])
            codes.append(code)
            for name, value in d.items():
                values[name].append(value)
        return cls(shapes, codes, values)

    @classmethod
    def concat(cls, parts: Sequence[FieldColumns]) -> FieldColumns:
        """The records of ``parts``, one after the other."""
        if len(parts) == 1:
            return parts[0]
        index: dict[tuple[str, ...], int] = {}
        shapes: list[tuple[str, ...]] = []
        codes: array[int] = array("I")
        values: dict[str, list[Any]] = {}
        for part in parts:
            remap = []
            for names in part.shapes:
                code = index.get(names)
                if code is None:
                    code = index[names] = len(shapes)
                    shapes.append(names)
                remap.append(code)
            if remap == list(range(len(remap))):  # the same codes: copied in C
                codes.extend(
                    part.codes
                    if isinstance(part.codes, array) and part.codes.typecode == "I"
                    else array("I", part.codes)
                )
            else:
                codes.extend(array("I", map(remap.__getitem__, part.codes)))
            for name, vals in part.values.items():
                values.setdefault(name, []).extend(vals)
        return cls(shapes, codes, values)

    def with_extra(self, extra: dict[str, Any]) -> FieldColumns:
        """Every record's fields as ``{**fields, **extra}`` (an input's own fields)."""
        if not extra:
            return self
        n = len(self.codes)
        shapes = [(*names, *(k for k in extra if k not in names)) for names in self.shapes]
        values = {k: v for k, v in self.values.items() if k not in extra}
        for k, v in extra.items():
            values[k] = [v] * n
        return FieldColumns(shapes, self.codes, values)

    def split(self, k: int) -> tuple[FieldColumns, FieldColumns]:
        """The first ``k`` records' columns and the rest's."""
        codes = self.codes
        taken: dict[str, int] = dict.fromkeys(self.values, 0)
        for code, count in Counter(codes[:k]).items():
            for name in self.shapes[code]:
                taken[name] += count
        values = self.values
        return (
            FieldColumns(self.shapes, codes[:k], {n: v[: taken[n]] for n, v in values.items()}),
            FieldColumns(self.shapes, codes[k:], {n: v[taken[n] :] for n, v in values.items()}),
        )

    def dicts(self) -> list[dict[str, Any]]:
        """Each record's fields as a dict (what the per-line path gives)."""
        iters = {k: iter(v) for k, v in self.values.items()}
        shapes = self.shapes
        return [{name: next(iters[name]) for name in shapes[code]} for code in self.codes]


class Block(NamedTuple):
    """What a block parser gives for ``count`` lines: per line its ts (the line's, else the
    default), its level (``levels`` is ``None`` when no line has one) and its fields; and how
    many lines failed to parse (their fields are empty, as ``Parsed`` says)."""

    ts: list[int]
    levels: list[str | None] | None
    fields: FieldColumns
    errors: int

    @classmethod
    def concat(cls, blocks: Sequence[Block]) -> Block:
        """The lines of ``blocks``, one after the other."""
        if len(blocks) == 1:
            return blocks[0]
        ts: list[int] = []
        levels: list[str | None] = []
        any_level = any(b.levels is not None for b in blocks)
        for b in blocks:
            ts += b.ts
            if any_level:
                levels += b.levels if b.levels is not None else [None] * len(b.ts)
        return cls(
            ts,
            levels if any_level else None,
            FieldColumns.concat([b.fields for b in blocks]),
            sum(b.errors for b in blocks),
        )
