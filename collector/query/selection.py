"""What a search or a tail selects, resolved against the storage: topics, the line query pushed
down into the scan, and the per-record predicate (``where``, levels) applied to what it returns.

Every error (unknown topic, bad regex, bad ``where``, unknown level) is raised here, before a
response starts, so the client gets a proper status instead of an error line mid-stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from collector.filters import where as wh
from collector.filters.query import Predicate, Query
from collector.storage.interface import Storage
from parsers.levels import normalize_level
from wharf.api import Filters
from wharf.errors import InvalidArgument
from wharf.record import LEVELS, Record

# ``level=`` accepts these besides the level names: records that carry no level.
_NO_LEVEL: Final = "none"


class _Levels:
    """``level=`` as a record filter."""

    __slots__ = ("_names",)

    def __init__(self, names: frozenset[str | None]) -> None:
        self._names = names

    def matches(self, record: Record) -> bool:
        return record.level in self._names


class _Both:
    __slots__ = ("_a", "_b")

    def __init__(self, a: Predicate, b: Predicate) -> None:
        self._a, self._b = a, b

    def matches(self, record: Record) -> bool:
        return self._a.matches(record) and self._b.matches(record)


def parse_levels(values: tuple[str, ...]) -> frozenset[str | None] | None:
    """``level=`` items: a level (``error``, or a spelling like ``warning``), ``LEVEL+`` for that
    level and every more severe one, or ``none`` for records without a level."""
    if not values:
        return None
    out: set[str | None] = set()
    for raw in values:
        text = raw.strip().lower()
        plus = text.endswith("+")
        name = text.rstrip("+").strip()
        if name == _NO_LEVEL and not plus:
            out.add(None)
            continue
        level = normalize_level(name)
        if level is None:
            raise InvalidArgument(
                f"unknown level {raw!r}: use {', '.join(LEVELS)} or none, "
                "optionally with + for that level and above (warn+)"
            )
        out.update(LEVELS[LEVELS.index(level) :] if plus else (level,))
    return frozenset(out)


@dataclass(frozen=True)
class Selection:
    """Topics (every one when the request named none), the line query and the predicate."""

    topics: list[str]
    query: Query
    where: wh.Where | None
    levels: frozenset[str | None] | None = None

    @property
    def predicate(self) -> Predicate | None:
        """The per-record filter beyond the line query (``None``: every record passes)."""
        levels = _Levels(self.levels) if self.levels is not None else None
        if self.where is not None and levels is not None:
            return _Both(levels, self.where)
        return self.where or levels


def select(storage: Storage, f: Filters) -> Selection:
    """Resolve a request's filters (raises the request's errors, see the module docstring)."""
    topics = list(f.topics) or storage.topics()
    for t in topics:
        storage.describe(t)  # UnknownTopic
    query = Query(
        pattern=f.q,
        fixed=f.fixed,
        ignore_case=f.icase,
        invert=f.invert,
        since_ns=f.since,
        until_ns=f.until,
        hosts=f.hosts,
        sources=f.sources,
    )
    query.matcher()  # InvalidArgument for a bad regex, with RE2's message
    expr = f.where.strip()
    return Selection(
        list(dict.fromkeys(topics)),
        query,
        wh.parse(expr) if expr else None,
        parse_levels(f.levels),
    )
