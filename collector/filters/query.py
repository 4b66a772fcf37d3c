"""What a scan filters on: the line query (pattern, flags, time range, host/source globs), which
prunes and matches batches before records exist, and the record predicate applied after it."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Protocol

import msgspec

from collector.filters.match import LineMatcher
from wharf.errors import InvalidArgument
from wharf.record import Record


class Predicate(Protocol):
    """A filter over whole records that the scan applies after the line query (``where``
    expressions, levels): it needs the record's fields, so it runs on materialized records."""

    def matches(self, record: Record) -> bool:
        """Whether ``record`` is kept."""
        ...


class Query(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to look for. Times are ns since the epoch, ``since_ns`` inclusive, ``until_ns``
    exclusive. ``hosts``/``sources`` are shell globs; a record matches if any glob does."""

    pattern: str = ""
    fixed: bool = False
    ignore_case: bool = False
    invert: bool = False
    since_ns: int | None = None
    until_ns: int | None = None
    hosts: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (
            self.since_ns is not None
            and self.until_ns is not None
            and self.since_ns >= self.until_ns
        ):
            raise InvalidArgument(
                f"empty time range: since {self.since_ns} is not before until {self.until_ns}"
            )

    def matcher(self) -> LineMatcher:
        """The compiled line matcher (raises ``InvalidArgument`` for a bad regex)."""
        return LineMatcher(
            self.pattern, fixed=self.fixed, ignore_case=self.ignore_case, invert=self.invert
        )

    def ts_bounds(self) -> tuple[int | None, int | None]:
        """Inclusive ``(min, max)`` record ts a batch must overlap."""
        return self.since_ns, None if self.until_ns is None else self.until_ns - 1

    def allowed(self, names: list[str], globs: tuple[str, ...]) -> set[int] | None:
        """Indexes of ``names`` matching any glob; ``None`` when there are no globs (all allowed)."""
        if not globs:
            return None
        return {i for i, name in enumerate(names) if any(fnmatchcase(name, g) for g in globs)}

    def in_time(self, ts: int) -> bool:
        """Whether ``ts`` lies in the range."""
        return (self.since_ns is None or ts >= self.since_ns) and (
            self.until_ns is None or ts < self.until_ns
        )
