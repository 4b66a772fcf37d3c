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

from parsers import FieldColumns, Parser
from parsers.columnar import columnar_for
from parsers.lines import LineRun
from parsers.raw import RawParser
from wharf import batch as wb


class RunParts:
    """One input's runs into batch parts (see the module docstring)."""

    __slots__ = ("columnar", "fields", "raw")

    def __init__(self, parser: Parser, fields: dict[str, Any]) -> None:
        self.raw = isinstance(parser, RawParser)
        self.columnar = None if self.raw else columnar_for(parser)
        self.fields = fields  # the input's own, merged over what the parser found

    @property
    def takes_runs(self) -> bool:
        """Whether runs become parts (else the caller parses their lines one by one)."""
        return self.raw or self.columnar is not None

    def part(
        self, lines: LineRun, *, now_ns: int, host: str, source: str, file_id: str
    ) -> tuple[wb.Run, int]:
        """The batch part of ``lines`` (``now_ns``: the ts of lines without one), and how many
        of them failed to parse. Only when ``takes_runs``."""
        extra = self.fields
        if self.columnar is None:
            fields = FieldColumns.constant(extra, lines.lines) if extra else None
            run = wb.Run(
                lines.blob,
                lines.lines,
                lines.offset,
                ts=now_ns,
                host=host,
                source=source,
                file_id=file_id,
                fields=fields,
            )
            return run, 0
        block = self.columnar.parse_block(lines.blob, lines.lines, now_ns)
        run = wb.Run(
            lines.blob,
            lines.lines,
            lines.offset,
            ts=block.ts,
            host=host,
            source=source,
            file_id=file_id,
            levels=block.levels,
            fields=block.fields.with_extra(extra) if extra else block.fields,
        )
        return run, block.errors
