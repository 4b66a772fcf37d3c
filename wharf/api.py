"""The collector's HTTP API as types: every request and every row, shared by the server, the CLI
and the web page (which reads the same JSON).

Requests travel as query parameters. A request Struct's field names *are* the parameter names
(``topic``, ``q``, ``icase``, ...; renamed where Python wants a plural), so one pair of
functions serves them all: ``to_params()`` writes what differs from the defaults,
``from_params()`` reads pairs back, refusing an unknown parameter, a repeated single-valued
one, or a bad value with ``InvalidArgument`` naming the parameter. Checks that involve several
parameters live in ``__post_init__``, which msgspec also runs when decoding JSON: a request is
valid however it was built.

Rows are what the NDJSON streams and JSON answers carry. Their JSON is the contract outside tools
rely on (``../shared/DESIGN.md``): field order and names are those the API has always sent.
``decode_row`` turns one NDJSON line into its row type.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any, Final, Literal, Self, Union, get_args, get_origin

import msgspec

from wharf.errors import ErrorBody, InvalidArgument, WharfError, code_of, error_body, error_from
from wharf.topics import TopicConfig, validate_topic

# Context lines per side, at most (grep has no limit; a search answer must stay bounded).
MAX_CONTEXT: Final = 1000
# ``n`` of a tail (records shown before following) is capped: a tail is for watching, not export.
MAX_BACKFILL: Final = 10_000
# Buckets of a histogram: a chart is a few hundred pixels wide, and the answer stays small.
DEFAULT_BUCKETS: Final = 100
MAX_BUCKETS: Final = 1000
# Values a facets answer lists (its ``limit``): the top of a list, not an export.
DEFAULT_FACET_LIMIT: Final = 10
MAX_FACET_LIMIT: Final = 100
# Context records per side of ``GET .../context`` when the request names none.
DEFAULT_RECORD_CONTEXT: Final = 10

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})

# Repeatable parameters that also take a comma-separated list (``topic=a,b``, ``level=warn,error``).
# Globs (``host``, ``source``) are not split: a comma may be part of one.
_COMMA_LISTS: Final = frozenset({"topic", "level"})


class Params(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of the requests sent as query parameters (see the module docstring)."""

    def to_params(self) -> list[tuple[str, str]]:
        """The query parameters of this request: every field that differs from its default."""
        out: list[tuple[str, str]] = []
        for f in msgspec.structs.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, tuple):
                out += [(f.encode_name, str(v)) for v in value]
            elif isinstance(value, bool):
                out.append((f.encode_name, "1" if value else "0"))
            else:
                out.append((f.encode_name, str(value)))
        return out

    @classmethod
    def from_params(cls, pairs: Iterable[tuple[str, str]]) -> Self:
        """The request from query parameter pairs (``request.query.items()``)."""
        fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
        given: dict[str, list[str]] = {}
        for name, value in pairs:
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise InvalidArgument(f"unknown parameter {name!r} (known: {known})")
            given.setdefault(name, []).append(value)
        values: dict[str, Any] = {}
        for name, raw in given.items():
            f = fields[name]
            values[f.name] = _value(name, f.type, raw)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:  # InvalidArgument from __post_init__ is a ValueError
            if isinstance(exc, InvalidArgument):
                raise
            raise InvalidArgument(str(exc)) from None


def _value(name: str, tp: Any, raw: list[str]) -> Any:
    """One parameter's value from its raw strings, by the field's type."""
    if get_origin(tp) is tuple:
        if name in _COMMA_LISTS:
            return tuple(v.strip() for r in raw for v in r.split(",") if v.strip())
        return tuple(raw)
    if len(raw) > 1:
        raise InvalidArgument(f"parameter {name} is given {len(raw)} times (at most once)")
    text = raw[0]
    optional = get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)
    if optional:
        if text.strip() == "":
            return None
        tp = next(a for a in get_args(tp) if a is not type(None))
    if tp is bool:
        value = text.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidArgument(f"parameter {name}={text!r} is not a boolean (use 1 or 0)")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise InvalidArgument(f"parameter {name}={text!r} is not an integer") from None
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        value = text.strip().lower()
        if value not in choices:
            raise InvalidArgument(
                f"parameter {name}={text!r} must be {' or '.join(map(str, choices))}"
            )
        return value
    return text


class OutOfBounds(InvalidArgument):
    """A parameter outside its bounds. ``parameter``, ``value`` and ``bound`` let a client say
    it in its own words (the CLI names its option, not the parameter); ``minimum`` says which
    side. Travels as ``invalid_argument``, like its parent."""

    def __init__(self, parameter: str, value: int, bound: int, *, minimum: bool) -> None:
        why = f"must be >= {bound}" if minimum else f"exceeds {bound}"
        super().__init__(f"parameter {parameter}={value} {why}")
        self.parameter, self.value, self.bound, self.minimum = parameter, value, bound, minimum


def _at_least(name: str, value: int | None, minimum: int) -> None:
    if value is not None and value < minimum:
        raise OutOfBounds(name, value, minimum, minimum=True)


def _at_most(name: str, value: int | None, maximum: int) -> None:
    if value is not None and value > maximum:
        raise OutOfBounds(name, value, maximum, minimum=False)


# -- requests -------------------------------------------------------------------------------


class Filters(Params, frozen=True, kw_only=True):
    """What search and tail select. Times are ns since the epoch, ``since`` inclusive, ``until``
    exclusive; ``hosts``/``sources`` are shell globs; ``levels`` are level names, ``LEVEL+``
    for that level and above, or ``none``; ``where`` is an expression over parsed fields."""

    topics: tuple[str, ...] = msgspec.field(default=(), name="topic")
    q: str = ""
    fixed: bool = False
    icase: bool = False
    invert: bool = False
    hosts: tuple[str, ...] = msgspec.field(default=(), name="host")
    sources: tuple[str, ...] = msgspec.field(default=(), name="source")
    levels: tuple[str, ...] = msgspec.field(default=(), name="level")
    where: str = ""
    since: int | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        for t in self.topics:
            validate_topic(t)
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidArgument(
                f"empty time range: since {self.since} is not before until {self.until}"
            )


class SearchRequest(Filters, frozen=True, kw_only=True):
    """``GET /v1/search``. ``count`` (grep -c) and ``files`` (grep -l) exclude each other;
    ``before``/``after`` (grep -B/-A) need ascending order."""

    limit: int | None = None
    order: Literal["asc", "desc"] = "asc"
    count: bool = False
    files: bool = False
    before: int | None = None
    after: int | None = None
    progress: bool = False
    cursor: str = msgspec.field(default="", name="from")

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("limit", self.limit, 1)
        for name in ("before", "after"):
            _at_least(name, getattr(self, name), 0)
            _at_most(name, getattr(self, name), MAX_CONTEXT)
        if self.count and self.files:
            raise InvalidArgument("count=1 and files=1 exclude each other")
        if self.context and self.order == "desc":
            raise InvalidArgument("context lines (before/after) need order=asc")
        if self.cursor.strip():
            if self.context:
                raise InvalidArgument(
                    "from= (a page cursor) and before/after (context lines) exclude each other: "
                    "context groups are not paged"
                )
            if self.count or self.files:
                raise InvalidArgument(
                    "from= (a page cursor) pages records: count=1 and files=1 take none"
                )

    @property
    def context(self) -> bool:
        """Whether records come in context groups."""
        return self.before is not None or self.after is not None


class TailRequest(Filters, frozen=True, kw_only=True):
    """``GET /v1/tail``: the last ``n`` matching records, then live ones. ``cursor`` (the
    ``from`` parameter) resumes where a heartbeat's cursor said: ``topic:partition:offset,...``."""

    n: int = 0
    cursor: str = msgspec.field(default="", name="from")

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("n", self.n, 0)
        _at_most("n", self.n, MAX_BACKFILL)


class HistogramRequest(Filters, frozen=True, kw_only=True):
    """``GET /v1/histogram``: records per time bucket, stacked by level. ``buckets`` caps how
    many (default ``DEFAULT_BUCKETS``); ``step`` (ns) fixes their width, else the collector picks
    the smallest round width that fits. With ``step`` and no ``buckets`` the cap is
    ``MAX_BUCKETS``."""

    buckets: int | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("buckets", self.buckets, 1)
        _at_most("buckets", self.buckets, MAX_BUCKETS)
        _at_least("step", self.step, 1)


class FacetsRequest(Filters, frozen=True, kw_only=True):
    """``GET /v1/facets``: the ``limit`` most frequent values of ``field`` (``host``,
    ``source``, ``level`` or a parsed field, dots reaching into nested maps) among the
    matching records."""

    field: str = ""
    limit: int = DEFAULT_FACET_LIMIT

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.field.strip():
            raise InvalidArgument(
                "parameter field is required: host, source, level or a parsed field (status, "
                "fields.status, http.method)"
            )
        _at_least("limit", self.limit, 1)
        _at_most("limit", self.limit, MAX_FACET_LIMIT)


class RecordContextRequest(Params, frozen=True, kw_only=True):
    """``GET /v1/topics/{t}/partitions/{p}/context``: the record at ``offset`` and up to
    ``before``/``after`` records of its host and source around it, in offset order."""

    offset: int | None = None
    before: int = DEFAULT_RECORD_CONTEXT
    after: int = DEFAULT_RECORD_CONTEXT

    def __post_init__(self) -> None:
        if self.offset is None:
            raise InvalidArgument("parameter offset is required (the record's offset)")
        _at_least("offset", self.offset, 0)
        for name in ("before", "after"):
            _at_least(name, getattr(self, name), 0)
            _at_most(name, getattr(self, name), MAX_CONTEXT)


class ConsumeRequest(Params, frozen=True, kw_only=True):
    """``GET /v1/topics/{t}/partitions/{p}/records``: from ``offset`` (default: the partition
    start), about ``max_bytes`` of stored batches."""

    offset: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        _at_least("offset", self.offset, 0)
        _at_least("max_bytes", self.max_bytes, 1)


class OffsetRequest(Params, frozen=True, kw_only=True):
    """``GET /v1/topics/{t}/partitions/{p}/offset?time=NS``."""

    time: int | None = None

    def __post_init__(self) -> None:
        if self.time is None:
            raise InvalidArgument("parameter time is required (nanoseconds since the epoch)")


class NoParams(Params, frozen=True, kw_only=True):
    """A GET that takes no query parameters (an unknown one is an error, not ignored)."""


class CreateTopic(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/topics``: a name, and settings overriding the collector's topic defaults."""

    name: str
    partitions: int | None = None
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int | None = None
    segment_ms: int | None = None


class CompactResult(msgspec.Struct, frozen=True):
    """``POST /v1/topics/{t}/compact``: what compacting every sealed segment did, once done
    (``segments`` compacted now; bytes of those segments before and after, and of their token
    filters; ``line_bytes``: their raw text; ``errors``: segments left as they were, and why)."""

    topic: str
    segments: int
    batches: int
    bytes_before: int
    bytes_after: int
    filter_bytes: int
    line_bytes: int
    seconds: float
    errors: list[str]


class CommitRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/groups/{group}/commit``: the next offset the group will read."""

    topic: str
    partition: int
    offset: int


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/groups/{group}/reset``: exactly one target; all partitions unless one is named."""

    topic: str
    partition: int | None = None
    to_offset: int | None = None
    to_time: int | None = None
    to: Literal["earliest", "latest"] | None = None


# -- rows -----------------------------------------------------------------------------------


class Hit(msgspec.Struct, gc=False):
    """One record as the API prints it (search, tail, consume)."""

    topic: str
    partition: int
    offset: int
    ts: int
    host: str
    source: str
    line: str
    fields: dict[str, Any]
    level: str | None


class ContextHit(Hit, gc=False):
    """A record of a context answer: whether it matched, and its group (grep's ``--`` between
    groups)."""

    match: bool
    group: int


class PartitionCount(msgspec.Struct):
    """``count=1``: matches in one partition."""

    topic: str
    partition: int
    count: int


class FileCount(msgspec.Struct):
    """``files=1``: matches in one source of one host."""

    topic: str
    host: str
    source: str
    count: int


class ProgressInfo(msgspec.Struct):
    """How far a long scan got."""

    bytes_read: int
    bytes_total: int
    batches_read: int
    matched: int
    elapsed_ms: float


class Progress(msgspec.Struct):
    """``progress=1``: a progress line while the scan runs."""

    progress: ProgressInfo


class SearchStats(msgspec.Struct):
    """What a search touched."""

    matched: int
    batches_total: int
    batches_read: int
    bytes_read: int
    bytes_decompressed: int
    errors: int
    error_messages: list[str]
    elapsed_ms: float


class Done(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The last line of a search; ``count`` in the count and files modes; ``cursor`` when
    ``limit`` cut a stream of records: ``from=`` it for the next page."""

    done: Literal[True]
    count: int | None = None
    stats: SearchStats
    cursor: str | None = None


class HistogramBucket(msgspec.Struct):
    """Records in ``[ts, ts + step)`` (clipped to the histogram's range), one count per level
    in the order of ``Histogram.levels``."""

    ts: int
    counts: list[int]


class Histogram(msgspec.Struct):
    """``GET /v1/histogram``: every bucket from the first to the last, empty ones too."""

    since: int
    until: int
    step: int
    levels: list[str]
    buckets: list[HistogramBucket]
    total: int
    stats: SearchStats


class FacetValue(msgspec.Struct):
    """One value of a facet and how many matching records have it."""

    value: str
    count: int


class Facets(msgspec.Struct):
    """``GET /v1/facets``: ``total`` matching records, ``missing`` of them without the field,
    ``distinct`` values seen (at most ``MAX_FACET_VALUES`` of the collector; ``capped`` when
    more were met, ``other`` the records with a value met past the cap), the top ``values`` by
    count, then value."""

    field: str
    total: int
    missing: int
    distinct: int
    capped: bool
    other: int
    values: list[FacetValue]
    stats: SearchStats


class Heartbeat(msgspec.Struct):
    """A tail's idle line: the cursor to resume from (``from=``)."""

    heartbeat: Literal[True]
    cursor: str


class ConsumeEnd(msgspec.Struct):
    """The last line of a consume read: where to continue, and the partition's end."""

    next_offset: int
    end_offset: int


class OffsetAnswer(msgspec.Struct):
    """``GET .../offset?time=``: the first offset at or after the time, clamped to the bounds."""

    topic: str
    partition: int
    time: int
    offset: int
    start_offset: int
    end_offset: int


class Compaction(msgspec.Struct, frozen=True):
    """A partition's compacted segments: how many, their bytes before and after compaction,
    and the bytes of their token filters (``wharf topics compact``)."""

    segments: int
    bytes_before: int
    bytes_after: int
    filter_bytes: int


class PartitionInfo(msgspec.Struct, frozen=True):
    """A partition of a described topic (``end_offset``: the next offset to be written).
    ``compaction``: ``None`` where the backend does not compact (the cluster's JetStream)."""

    partition: int
    start_offset: int
    end_offset: int
    bytes: int
    segments: int
    min_ts: int | None
    max_ts: int | None
    compaction: Compaction | None = None


class PartitionSizes(PartitionInfo, frozen=True, kw_only=True):
    """A partition with the raw size of its lines (newlines included, exact)."""

    line_bytes: int


class TopicInfo(msgspec.Struct, frozen=True):
    """A topic: settings and partitions (the answer to a create)."""

    name: str
    config: TopicConfig
    partitions: list[PartitionInfo]


class TopicSizes(msgspec.Struct):
    """A described topic with its sizes (``GET /v1/topics``, ``GET /v1/topics/{t}``)."""

    name: str
    config: TopicConfig
    partitions: list[PartitionSizes]
    records: int
    bytes: int
    line_bytes: int
    compression_ratio: float | None
    min_ts: int | None
    max_ts: int | None


class TopicList(msgspec.Struct):
    """``GET /v1/topics``."""

    topics: list[TopicSizes]


class GroupOffset(msgspec.Struct):
    """A group's position in one partition (``committed`` is null before the first commit)."""

    topic: str
    partition: int
    committed: int | None
    start_offset: int
    end_offset: int
    lag: int


class GroupInfo(msgspec.Struct):
    """``GET /v1/groups/{g}`` (and the answer to a commit or reset)."""

    group: str
    offsets: list[GroupOffset]
    lag: int


class GroupList(msgspec.Struct):
    """``GET /v1/groups``."""

    groups: list[str]


# -- NDJSON ---------------------------------------------------------------------------------

Row = Hit | ContextHit | PartitionCount | FileCount | Progress | Done | Heartbeat | ConsumeEnd

_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(dict[str, Any])


def encode_row(row: msgspec.Struct) -> bytes:
    """One NDJSON line."""
    return _encoder.encode(row) + b"\n"


def _kind(obj: dict[str, Any]) -> type[Row]:
    # Rows carry no tag (their JSON predates these types); each has a key no other row has.
    if "offset" in obj:
        return ContextHit if "match" in obj else Hit
    if "done" in obj:
        return Done
    if "progress" in obj:
        return Progress
    if "heartbeat" in obj:
        return Heartbeat
    if "next_offset" in obj:
        return ConsumeEnd
    if "source" in obj:
        return FileCount
    if "partition" in obj:
        return PartitionCount
    raise InvalidArgument(f"unknown row with keys {sorted(obj)}")


def error_row(exc: BaseException) -> ErrorBody:
    """The error line of a failed request or stream. An exception that is not a Wharf error is
    named by its type only (its text may hold anything) and logged by the server."""
    if isinstance(exc, WharfError):
        return error_body(exc)
    return ErrorBody(f"internal error: {type(exc).__name__}", code_of(exc), False)


def decode_row(line: bytes) -> Row:
    """The row of one NDJSON line. An ``{"error": ...}`` line raises the error it names (its
    ``code`` picks the class), so a stream that failed midway fails the reader too."""
    obj = _decoder.decode(line)
    if "error" in obj:
        raise error_from(
            str(obj.get("code", "")), str(obj["error"]), retriable=bool(obj.get("retriable"))
        )
    kind = _kind(obj)
    row: Row = msgspec.convert(obj, kind)
    return row
