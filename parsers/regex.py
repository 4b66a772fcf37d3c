"""A user's regular expression with named groups: each group that matched becomes a field.

    RegexParser(r"^(?P<time>\\S+ \\S+) (?P<level>\\w+) \\[(?P<thread>[^\\]]+)\\] (?P<msg>.*)$",
                time_key="time", time_format="%Y-%m-%d %H:%M:%S,%f")

The pattern is Python ``re`` syntax and is searched for anywhere in the line (anchor it with
``^`` to match from the start), as Fluent Bit's and Vector's regex parsers do. A line it does
not match is an error (the line itself is always kept by the caller).

- ``time_key``: the group holding the time. It becomes ``Parsed.ts`` and leaves ``fields``;
  ``time_format`` (strptime-style, see ``parsers.timestamps.compile_format``) reads it, or any
  format ``parse_any`` knows when not given. A time that does not parse stays in ``fields`` and
  ``ts`` stays unset (the caller then uses the read time), as Fluent Bit does.
- ``level_key``: the group holding the severity (``"level"`` unless told; ``None`` for none),
  normalized into ``Parsed.level``; the field itself is kept.
- ``tz``: the zone of times that carry none.

Everything that can be wrong with the configuration (a pattern that does not compile, has no
named group, or lacks the named ``time_key``; a bad ``time_format``) is a ``ValueError`` at
construction, naming the pattern and the problem: never an error per line.

Mind that ``re`` backtracks: a pattern with nested quantifiers (``(a+)+``) can take very long on
some lines. Prefer specific classes (``[^ ]+``, ``[^\\]]*``) to ``.*`` between fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any, Final

from parsers._base import Parsed
from parsers.levels import normalize_level
from parsers.timestamps import compile_format, parse_any

__all__ = ["RegexParser"]

# Per line, so short: the pattern is in the configuration.
_NO_MATCH: Final = "line does not match the regex parser's pattern"
# Used when the pattern has a group of that name; an explicit other key must exist.
_DEFAULT_LEVEL_KEY: Final = "level"


class RegexParser:
    """Named groups of a user pattern become fields (see the module docstring)."""

    name = "regex"

    def __init__(
        self,
        pattern: str,
        time_key: str | None = None,
        time_format: str | None = None,
        level_key: str | None = _DEFAULT_LEVEL_KEY,
        *,
        tz: tzinfo = UTC,
    ) -> None:
        try:
            self._re = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"regex parser: pattern {pattern!r} does not compile: {exc}") from exc
        except (TypeError, OverflowError, RecursionError) as exc:
            raise ValueError(f"regex parser: pattern {pattern!r} is not usable: {exc}") from exc
        groups = self._re.groupindex
        if not groups:
            raise ValueError(
                f"regex parser: pattern {pattern!r} has no named group "
                "(write (?P<name>...) for each field)"
            )
        if time_key is not None and time_key not in groups:
            raise ValueError(
                f"regex parser: time_key {time_key!r} is not a named group of pattern "
                f"{pattern!r} (groups: {', '.join(groups)})"
            )
        if time_format is not None and time_key is None:
            raise ValueError(f"regex parser: time_format {time_format!r} given without time_key")
        self._time_key = time_key
        self._parse_time: Callable[[str], int | None]
        if time_format is not None:
            try:
                self._parse_time = compile_format(time_format, tz=tz)
            except ValueError as exc:
                raise ValueError(
                    f"regex parser: time_format {time_format!r} (pattern {pattern!r}): {exc}"
                ) from exc
        else:
            self._parse_time = lambda text: parse_any(text, tz=tz)
        if level_key is not None and level_key not in groups and level_key != _DEFAULT_LEVEL_KEY:
            raise ValueError(
                f"regex parser: level_key {level_key!r} is not a named group of pattern "
                f"{pattern!r} (groups: {', '.join(groups)})"
            )
        self._level_key = level_key if level_key is not None and level_key in groups else None
        self.pattern = pattern

    def parse(self, line: str) -> Parsed:
        m = self._re.search(line)
        if m is None:
            return Parsed(error=_NO_MATCH)
        fields: dict[str, Any] = {k: v for k, v in m.groupdict().items() if v is not None}
        ns: int | None = None
        time_key = self._time_key
        if time_key is not None:
            text = fields.get(time_key)
            if text is not None:
                ns = self._parse_time(text)
                if ns is not None:
                    del fields[time_key]
        level: str | None = None
        if self._level_key is not None:
            value = fields.get(self._level_key)
            if value is not None:
                level = normalize_level(value)
        return Parsed(fields=fields, ts=ns, level=level)
