"""Offsets on the command line: ``--from-offset 120`` (every partition) or
``--from-offset 0:120 --from-offset 1:55`` (per partition), and the same form when printing
the command that resumes an interrupted replay."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from wharf.errors import InvalidArgument

_SPEC: Final = re.compile(r"(?:([0-9]+):)?([0-9]+)")


@dataclass(frozen=True)
class OffsetSpec:
    """Offsets from one repeatable option: one for every partition, and/or per partition
    (a per-partition value wins)."""

    every: int | None = None
    per_partition: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.every is not None or bool(self.per_partition)

    def get(self, partition: int) -> int | None:
        """The offset for ``partition``, if the option gave one."""
        return self.per_partition.get(partition, self.every)


def parse_offsets(values: Iterable[str], option: str) -> OffsetSpec:
    """Parse ``N`` and ``P:N`` values of ``option``."""
    every: int | None = None
    per: dict[int, int] = {}
    for raw in values:
        for item in filter(None, (v.strip() for v in raw.split(","))):
            m = _SPEC.fullmatch(item)
            if m is None:
                raise InvalidArgument(
                    f"invalid {option} {item!r}: use an offset (120) or PARTITION:OFFSET (0:120)"
                )
            offset = int(m.group(2))
            if m.group(1) is None:
                if every is not None and every != offset:
                    raise InvalidArgument(f"{option} given twice for every partition")
                every = offset
            else:
                p = int(m.group(1))
                if per.get(p, offset) != offset:
                    raise InvalidArgument(f"{option} given twice for partition {p}")
                per[p] = offset
    return OffsetSpec(every, per)


def offset_args(option: str, offsets: Mapping[int, int]) -> list[str]:
    """``[option, "P:N", ...]`` for each partition, in partition order."""
    out: list[str] = []
    for p, o in sorted(offsets.items()):
        out += [option, f"{p}:{o}"]
    return out
