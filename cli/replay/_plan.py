"""Where each partition of a replay starts and stops, from the options and what the collector
said about the topic (bounds, a group's committed offsets, offsets looked up by time).

Start: ``--group`` (its committed offset; the earliest where it has none), ``--from-offset``,
``--from-time`` (the first record stamped at or after it), else the earliest offset. An offset
already deleted by retention starts at the earliest kept, with a warning.

Stop (exclusive): ``--to-offset``, ``--to-time`` (before the first record stamped at or after
it), else the partition's end when the replay starts; ``--follow`` never stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cli.replay._merge import Cursor
from cli.replay._positions import OffsetSpec
from wharf.errors import InvalidArgument


@dataclass(frozen=True)
class Bounds:
    """One partition as the collector described it."""

    partition: int
    start_offset: int
    end_offset: int


@dataclass
class Plan:
    """Cursors to read, what the user should know, and the records expected (if bounded)."""

    cursors: list[Cursor]
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int | None:
        """Records between starts and stops (an upper bound with time limits the collector
        could not look up); ``None`` when following."""
        if any(c.stop is None for c in self.cursors):
            return None
        return sum(max(0, (c.stop or 0) - c.position) for c in self.cursors)


def select_partitions(bounds: Sequence[Bounds], wanted: Sequence[int]) -> list[Bounds]:
    """The partitions named by ``--partition`` (all when none), checked."""
    by_number = {b.partition: b for b in bounds}
    if not wanted:
        return sorted(bounds, key=lambda b: b.partition)
    out = []
    for p in sorted(set(wanted)):
        if p not in by_number:
            last = max(by_number) if by_number else -1
            raise InvalidArgument(f"--partition {p}: the topic has partitions 0..{last}")
        out.append(by_number[p])
    return out


def _check_named(spec: OffsetSpec, selected: set[int], option: str) -> None:
    for p in spec.per_partition:
        if p not in selected:
            raise InvalidArgument(
                f"{option} names partition {p}, which is not replayed "
                f"(replayed: {', '.join(map(str, sorted(selected)))})"
            )


def make_plan(
    parts: Sequence[Bounds],
    *,
    from_offsets: OffsetSpec | None = None,
    committed: Mapping[int, int] | None = None,
    from_ts: int | None = None,
    from_time_offsets: Mapping[int, int] | None = None,
    to_offsets: OffsetSpec | None = None,
    to_ts: int | None = None,
    to_time_offsets: Mapping[int, int] | None = None,
    follow: bool = False,
) -> Plan:
    """Cursors for ``parts`` (see the module docstring). ``*_time_offsets`` are the offsets the
    collector looked up for ``from_ts``/``to_ts``; without them the cursors filter by time."""
    from_offsets = from_offsets or OffsetSpec()
    to_offsets = to_offsets or OffsetSpec()
    selected = {b.partition for b in parts}
    _check_named(from_offsets, selected, "--from-offset")
    _check_named(to_offsets, selected, "--to-offset")
    plan = Plan([])
    for b in parts:
        p, first, end = b.partition, b.start_offset, b.end_offset
        skip_ts: int | None = None
        given = from_offsets.get(p)
        if committed is not None:
            start = committed.get(p, first)
            what = "the group's committed offset"
        elif given is not None:
            start = given
            what = "--from-offset"
        elif from_ts is not None and from_time_offsets is not None:
            start = from_time_offsets.get(p, first)
            what = "--from-time"
        else:
            start = first
            skip_ts = from_ts
            what = ""
        if start > end:
            raise InvalidArgument(
                f"{what} {start} is past the end of partition {p} (its end offset is {end})"
            )
        if start < first:
            plan.warnings.append(
                f"partition {p}: offsets {start}..{first - 1} were deleted by retention; "
                f"starting at {first}"
            )
            start = first
        stop: int | None = None
        stop_ts: int | None = None
        to_given = to_offsets.get(p)
        if follow:
            stop = None
        elif to_given is not None:
            if given is not None and to_given < given:
                raise InvalidArgument(
                    f"partition {p}: --to-offset {to_given} is before --from-offset {given}"
                )
            if to_given > end:
                plan.warnings.append(
                    f"partition {p} ends at {end} now; replaying up to there, not {to_given}"
                )
            stop = max(start, min(to_given, end))
        elif to_ts is not None:
            looked_up = (to_time_offsets or {}).get(p)
            stop = max(start, min(end, looked_up if looked_up is not None else end))
            stop_ts = to_ts
        else:
            stop = end
        plan.cursors.append(
            Cursor(p, start, stop=stop, known_end=end, stop_ts=stop_ts, skip_ts=skip_ts)
        )
    return plan
