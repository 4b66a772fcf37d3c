"""Events into records: the one place a parsed line becomes a ``Record``.

The daemon's reader and ``wharf ship`` both come here (through ``shipper.intake``) for the
events that are not a run of whole lines (``shipper.runs`` builds those as columns, without a
record per line): multiline events, joined container lines, repaired lines, and every line of
an input whose parser has no block form.

A record's ``ts`` is the parsed timestamp, else ``now_ns`` (one clock read per chunk);
``fields`` are the parser's with the input's own ``extra`` fields over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parsers import Parser, Record
from parsers.raw import RawParser


def to_records(
    parser: Parser,
    extra: Mapping[str, Any],
    texts: Sequence[str],
    offsets: Sequence[int],
    *,
    now_ns: int,
    host: str,
    source: str,
    file_id: str,
) -> tuple[list[Record], int]:
    """The records of events ``texts[i]`` starting at file offset ``offsets[i]``, and how many
    of them failed to parse (those keep their line and no fields)."""
    if isinstance(parser, RawParser):
        # No parser call for raw. Records only go to ``wharf.batch.build``, which never changes
        # them: one shared fields dict (empty, or the input's extra fields) serves them all.
        fields: dict[str, Any] = dict(extra) if extra else {}
        raw = [
            Record(
                ts=now_ns,
                line=text,
                host=host,
                source=source,
                fields=fields,
                file_id=file_id,
                offset=off,
            )
            for text, off in zip(texts, offsets, strict=True)
        ]
        return raw, 0
    records: list[Record] = []
    errors = 0
    for text, off in zip(texts, offsets, strict=True):
        parsed = parser.parse(text)
        if parsed.error is not None:
            errors += 1
        records.append(
            Record(
                ts=parsed.ts if parsed.ts is not None else now_ns,
                line=text,
                host=host,
                source=source,
                fields={**parsed.fields, **extra} if extra else parsed.fields,
                level=parsed.level,
                file_id=file_id,
                offset=off,
            )
        )
    return records, errors
