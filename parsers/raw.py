"""The raw parser: the line is the record. No fields, no level, no timestamp (the read time)."""

from __future__ import annotations

from parsers._base import Parsed

__all__ = ["RawParser"]


class RawParser:
    """Keep each line as it is; grep still works on the raw text."""

    name = "raw"

    def parse(self, line: str) -> Parsed:
        """Return an empty ``Parsed`` (a new one: callers may add fields to it)."""
        return Parsed()
