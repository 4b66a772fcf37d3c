"""Top values of one field over every record a query matches: ``GET /v1/facets``.

Exact, never a sample of the first hits: each matching record counts once, for its value or as
``missing``. ``host``, ``source`` and ``level`` are counted from the batches' dictionaries and
columns (``collector.query.columnar``), no record decoded; any other name is a parsed field read
the way a ``where`` expression reads it (``status``, ``fields.status`` for a field shadowed by
a record attribute, dots reaching into nested maps: ``http.method``), from the matching records
only (decoded by the scan, like a ``where`` count).

Values are rendered as the text ``where`` compares them as (``collector.filters.where.as_text``:
strings as they are, ``null``, ``true``/``false``, numbers as Python prints them, maps and lists
as JSON), so a value's count equals the count of ``where=FIELD="VALUE"`` for string values. A
record without a level is ``missing`` for the ``level`` facet (``level=none`` selects those).

Distinct values are capped at ``MAX_FACET_VALUES``: a field like a request id has millions,
and the counts live in memory. Once the cap is reached, records with a value not yet seen are
counted in ``other`` and the answer says ``capped``; values seen before keep counting exactly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Final

from collector.filters import where as wh
from collector.query.columnar import level_codes, select_rows
from collector.query.search import stats_row
from collector.query.selection import Selection
from collector.storage.interface import Storage
from collector.storage.scan import ScanStats, Watch
from wharf.api import Facets, FacetsRequest, FacetValue
from wharf.errors import InvalidArgument
from wharf.record import LEVELS

# Distinct values counted per request, at most (see the module docstring): ~1 MB of counts.
MAX_FACET_VALUES: Final = 10_000
# Record attributes counted from the columns.
_COLUMNS: Final = frozenset({"host", "source", "level"})
# Record attributes that are not facets: every line and every timestamp is its own value.
_NOT_FACETS: Final = frozenset({"line", "ts"})


class _Counts:
    """Value counts with the cap."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.other = 0
        self.missing = 0
        self.capped = False

    def add(self, value: str, n: int) -> None:
        counts = self.counts
        if value in counts:
            counts[value] += n
        elif len(counts) < MAX_FACET_VALUES:
            counts[value] = n
        else:
            self.other += n
            self.capped = True

    def top(self, limit: int) -> list[FacetValue]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [FacetValue(v, n) for v, n in ranked[:limit]]


def facets(store: Storage, req: FacetsRequest, sel: Selection, cancel: threading.Event) -> Facets:
    """The facets of ``req`` (worker thread; stops early, with what it counted, when
    ``cancel`` is set)."""
    started = time.monotonic()
    name = req.field.strip()
    if name in _NOT_FACETS:
        raise InvalidArgument(
            f"field={name} is not a facet (every record has its own); use fields.{name} for a "
            f"parsed field named {name}"
        )
    stats = ScanStats()
    watch = Watch(cancel)
    counts = _Counts()
    parts = [part for t in sel.topics for part in store.partitions(t)]
    total = 0
    if name in _COLUMNS and sel.where is None:
        levels = level_codes(sel.levels) if sel.levels is not None else None
        for s in select_rows(parts, sel.query, levels, stats=stats, watch=watch):
            b = s.batch
            n = len(b) if s.rows is None else len(s.rows)
            total += n
            column: Sequence[int]
            names: list[str | None]
            if name == "level":
                column, names = b.columns().level, [None, *LEVELS]
            elif name == "host":
                column, names = b.host_indexes(), list(b.hosts)
            else:
                column, names = b.source_indexes(), list(b.sources)
            if len(names) == 1 and name != "level":
                found = Counter({0: n})
            elif s.rows is None:
                found = Counter(column)
            else:
                found = Counter(map(column.__getitem__, s.rows))
            for code, k in sorted(found.items()):
                value = names[code]
                if value is None:
                    counts.missing += k
                else:
                    counts.add(value, k)
    else:
        read = wh.reader(name)
        as_text = wh.as_text
        for part in parts:
            for hit in part.scan(sel.query, predicate=sel.predicate, stats=stats, watch=watch):
                total += 1
                got = read(hit.record)
                if got is wh.MISSING or (name == "level" and got is None):
                    counts.missing += 1
                else:
                    counts.add(as_text(got), 1)
            if cancel.is_set():
                break
    return Facets(
        field=name,
        total=total,
        missing=counts.missing,
        distinct=len(counts.counts),
        capped=counts.capped,
        other=counts.other,
        values=counts.top(req.limit),
        stats=stats_row(stats, total, started),
    )
