"""Runs of whole lines into batch parts: the zero-copy path from a file's bytes to a batch.

A ``Tail`` hands over the whole lines of a chunk that need no repair as a ``LineRun`` (the
bytes as read). ``RunParts`` turns one into a ``wharf.batch.Run``: for ``raw`` the bytes and
one read time; for a parser with a block form (``parsers.columnar``) the same bytes with the
block's timestamps, levels and fields by column. Either way no per-line Python object is
made for the batch; ``wharf.batch.build_parts`` builds from the runs in the builder thread.

Pure and independent of the daemon: an input's parser and fields in, parts out, so the
reader, ``wharf ship`` or a builder process can all use it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from parsers import FieldColumns, Parser, get_parser
from parsers.columnar import columnar_for
from parsers.lines import LineRun
from parsers.raw import RawParser
from wharf import batch as wb


class ParseSpec(msgspec.Struct, frozen=True, array_like=True):
    """How an input turns lines into records, as plain data: what a builder process needs to
    parse an input's runs as the reader would (``shipper.building``)."""

    parser: str
    options: dict[str, Any] = {}
    fields: dict[str, Any] = {}


class RunParts:
    """One input's runs into batch parts (see the module docstring).

    With ``deferred`` set, ``part`` only wraps the lines (``wharf.batch.Run.unparsed`` is the
    spec) and ``finish``, in a builder process, parses them: the reading thread then does no
    per-line work at all.
    """

    __slots__ = ("columnar", "deferred", "fields", "raw")

    def __init__(self, parser: Parser, fields: dict[str, Any]) -> None:
        self.raw = isinstance(parser, RawParser)
        self.columnar = None if self.raw else columnar_for(parser)
        self.fields = fields  # the input's own, merged over what the parser found
        self.deferred: ParseSpec | None = None

    @classmethod
    def of(cls, spec: ParseSpec) -> RunParts:
        """The parts of an input given by its spec (in a builder process)."""
        return cls(get_parser(spec.parser, **spec.options), dict(spec.fields))

    @property
    def takes_runs(self) -> bool:
        """Whether runs become parts (else the caller parses their lines one by one)."""
        return self.raw or self.columnar is not None

    def part(
        self, lines: LineRun, *, now_ns: int, host: str, source: str, file_id: str
    ) -> tuple[wb.Run, int]:
        """The batch part of ``lines`` (``now_ns``: the ts of lines without one), and how many
        of them failed to parse. Only when ``takes_runs``; unparsed when ``deferred``."""
        run = wb.Run(
            lines.blob,
            lines.lines,
            lines.offset,
            ts=now_ns,
            host=host,
            source=source,
            file_id=file_id,
            unparsed=self.deferred,
        )
        if self.deferred is not None:
            return run, 0
        return self.finish(run)

    def finish(self, run: wb.Run) -> tuple[wb.Run, int]:
        """``run``'s lines parsed (its ``ts``: the time of lines without one), and how many of
        them failed to parse."""
        if not isinstance(run.ts, int):
            raise TypeError("finish() takes a run as read: one ts for all its lines")
        extra = self.fields
        kw: dict[str, Any] = {"host": run.host, "source": run.source, "file_id": run.file_id}
        if self.columnar is None:
            fields = FieldColumns.constant(extra, run.count) if extra else None
            return wb.Run(run.blob, run.count, run.offset, ts=run.ts, fields=fields, **kw), 0
        block = self.columnar.parse_block(run.blob, run.count, run.ts)
        parsed = wb.Run(
            run.blob,
            run.count,
            run.offset,
            ts=block.ts,
            levels=block.levels,
            fields=block.fields.with_extra(extra) if extra else block.fields,
            **kw,
        )
        return parsed, block.errors
