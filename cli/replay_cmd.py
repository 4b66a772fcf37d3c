"""``wharf replay``: a range of a topic, read through the collector's consume API, into a sink,
at a chosen pace, resumable through a consumer group. The pure parts live in ``cli.replay``;
the sinks in ``cli.sinks``."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Annotated, Any, Final, TypeVar

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cli._common import EXIT_ERROR, console, user_errors
from cli._records import HttpUrl
from cli.http_client import Client, Consumed, is_error
from cli.render import FORMAT_HELP, encoder_for
from cli.replay import (
    DEFAULT_BATCH,
    DONE,
    IDLE,
    Bounds,
    Cursor,
    Merger,
    NeedFetch,
    Plan,
    ReplayOptions,
    SinkBatcher,
    SpeedPacer,
    TokenBucket,
    backoff_delay,
    make_plan,
    select_partitions,
)
from cli.sinks import Sink, SinkClosed, WharfSink, open_sink
from cli.timeparse import parse_duration, parse_time
from wharf.api import CommitRequest, ConsumeRequest, Hit
from wharf.errors import (
    MethodNotAllowed,
    NotFound,
    OffsetOutOfRange,
    UnknownGroup,
    WharfError,
)

T = TypeVar("T")

# Stored bytes per consume request: small enough that a replay over many partitions holds
# little memory (the merge keeps one answer per partition), big enough to amortize the request.
FETCH_BYTES: Final = 256 << 10
# Following: the first poll of the topic's end offsets waits this long, doubling while nothing
# arrives up to the maximum (one small request per interval however many partitions).
POLL_MIN_S: Final = 0.1
POLL_MAX_S: Final = 1.0
# Without a terminal, a progress line this often (and a summary at the end).
PLAIN_PROGRESS_S: Final = 10.0
EXIT_INTERRUPTED: Final = {signal.SIGINT: 130, signal.SIGTERM: 143}


def replay(
    topic: Annotated[str, typer.Option("-t", "--topic", help="Topic to replay.")],
    partition: Annotated[
        list[int] | None,
        typer.Option("--partition", help="Only this partition (repeatable; default: all)."),
    ] = None,
    from_offset: Annotated[
        list[str] | None,
        typer.Option(
            "--from-offset",
            help="Start at offset N of every partition, or P:N for partition P (repeatable).",
        ),
    ] = None,
    from_time: Annotated[
        str | None,
        typer.Option("--from-time", help="Start at the first record stamped at or after TS."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            "-g",
            help="Start at this consumer group's committed offsets (earliest where none) and "
            "commit each batch once the sink accepted it.",
        ),
    ] = None,
    to_offset: Annotated[
        list[str] | None,
        typer.Option("--to-offset", help="Stop before offset N, or P:N per partition."),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option("--to-time", help="Stop before the first record stamped at or after TS."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Do not stop at the end: wait for new records.")
    ] = False,
    rate: Annotated[
        str | None, typer.Option("--rate", help="At most this many records: 500/s, 100/m, 2/h.")
    ] = None,
    speed: Annotated[
        str | None,
        typer.Option("--speed", help="Keep the records' own spacing, X times faster (10, 0.5, 1)."),
    ] = None,
    max_gap: Annotated[
        str,
        typer.Option(
            "--max-gap", help="With --speed: never pause longer than this between records."
        ),
    ] = "60s",
    sink: Annotated[
        str,
        typer.Option(
            "--sink",
            help="stdout, file:PATH, http(s)://URL, tcp://HOST:PORT or wharf://HOST:PORT/TOPIC.",
        ),
    ] = "stdout",
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help=f"{FORMAT_HELP} (stdout, file and tcp sinks; as wharf grep)."
        ),
    ] = "json",
    batch: Annotated[
        int, typer.Option("--batch", help="Records per delivery (and per group commit).")
    ] = DEFAULT_BATCH,
    sink_header: Annotated[
        list[str] | None,
        typer.Option("--sink-header", help="'Name: value' sent to an http sink (repeatable)."),
    ] = None,
    retry_for: Annotated[
        str,
        typer.Option(
            "--retry-for", help="Retry a failing sink or collector this long, then give up."
        ),
    ] = "5m",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary.")] = False,
    http: HttpUrl = None,
) -> None:
    """Replay a range of a topic into a sink: from an offset, a time or a
    consumer group's position, to an offset, a time, the current end, or
    forever (--follow).

    [bold]Order[/bold]: each partition in offset order; partitions are merged
    by record timestamp (oldest next record first), so --speed keeps the
    spacing of the whole topic.

    [bold]Delivery is at least once[/bold]. With --group, offsets are
    committed only after the sink accepted the records (HTTP 2xx, file
    fsync, collector ack): a replay killed at any moment and run again with
    the same --group misses nothing and repeats at most the batch that was
    in flight. HTTP batches carry an Idempotency-Key
    ({topic}-{partition}-{first}-{last}) so a receiver can drop a repeat;
    the wharf:// sink drops repeats itself (exactly once). tcp has no
    acknowledgement: accepted means written to the socket.

    [bold]Pace[/bold]: --rate caps records per second (token bucket).
    --speed X sleeps the timestamp gaps divided by X; a pause longer than
    --max-gap is cut to it; out-of-order timestamps go at once.

    Ctrl-C stops cleanly: what the sink accepted is committed and the
    command that resumes is printed (exit 130). Errors are one line, exit 2.
    TS takes the forms of wharf grep --from: RFC 3339, a date, a time of
    day, or a duration ago (2h).

    Examples:

      [bold]wharf replay -t orders --from-time 2024-05-01 --to-time 2024-05-02[/bold]

      [bold]wharf replay -t orders -g etl --sink https://etl.example/in[/bold]

      [bold]wharf replay -t nginx --from-time 1h --speed 10 -o raw[/bold]

      [bold]wharf replay -t app -g copy -f --sink wharf://10.0.0.5:7070/copy[/bold]

      [bold]wharf replay -t auth --from-offset 0:120 --sink file:auth.ndjson[/bold]

      [bold]wharf replay -t app --rate 200/s --sink tcp://127.0.0.1:5170[/bold]
    """
    with user_errors():
        now = time.time_ns()
        opts = ReplayOptions.build(
            topic=topic,
            partitions=partition or [],
            from_offset=from_offset or [],
            from_ts=parse_time(from_time, now) if from_time else None,
            from_time_text=from_time,
            group=group,
            to_offset=to_offset or [],
            to_ts=parse_time(to_time, now) if to_time else None,
            to_time_text=to_time,
            follow=follow,
            rate=rate,
            speed=speed,
            max_gap_s=parse_duration(max_gap) / 1e9,
            max_gap_text=max_gap,
            sink=sink,
            output=output,
            batch=batch,
            sink_headers=sink_header or [],
            retry_for_s=parse_duration(retry_for) / 1e9,
            retry_for_text=retry_for,
            http=http,
        )
        client = Client(http)
        plan = _make_plan(client, opts)
        ui = _Ui(quiet, stdout_taken=opts.sink.kind == "stdout")
        for w in plan.warnings:
            ui.note(w)
        sink_obj = open_sink(
            opts.sink,
            topic=opts.topic,
            source_url=client.base_url,
            headers=list(opts.headers),
            notify=ui.note,
            give_up_s=opts.retry_for_s,
        )
    code = _Replay(client, opts, plan, sink_obj, ui).execute()
    raise typer.Exit(code)


# -- planning (one request per question to the collector) -----------------------------------


def _bounds(client: Client, topic: str) -> list[Bounds]:
    return [
        Bounds(p.partition, p.start_offset, p.end_offset) for p in client.topic(topic).partitions
    ]


def _committed(client: Client, group: str, topic: str) -> dict[int, int]:
    try:
        info = client.group(group)
    except WharfError as exc:
        if is_error(exc, UnknownGroup):
            return {}  # a new group: it starts at the earliest offsets
        raise
    return {
        row.partition: row.committed
        for row in info.offsets
        if row.topic == topic and row.committed is not None
    }


def _offsets_for_time(
    client: Client, topic: str, parts: list[Bounds], ts: int
) -> dict[int, int] | None:
    """The collector's offset for ``ts`` per partition, or ``None`` if it cannot say (a
    collector without the lookup: the cursors then filter by timestamp as they read)."""
    out: dict[int, int] = {}
    for b in parts:
        try:
            answer = client.offset_for_time(topic, b.partition, ts)
        except WharfError as exc:
            if is_error(exc, NotFound) or is_error(exc, MethodNotAllowed):
                return None
            raise
        out[b.partition] = answer.offset
    return out


def _make_plan(client: Client, opts: ReplayOptions) -> Plan:
    parts = select_partitions(_bounds(client, opts.topic), opts.partitions)
    committed = _committed(client, opts.group, opts.topic) if opts.group else None
    from_time_offsets = (
        _offsets_for_time(client, opts.topic, parts, opts.from_ts)
        if opts.from_ts is not None
        else None
    )
    to_time_offsets = (
        _offsets_for_time(client, opts.topic, parts, opts.to_ts) if opts.to_ts is not None else None
    )
    return make_plan(
        parts,
        from_offsets=opts.from_offsets,
        committed=committed,
        from_ts=opts.from_ts,
        from_time_offsets=from_time_offsets,
        to_offsets=opts.to_offsets,
        to_ts=opts.to_ts,
        to_time_offsets=to_time_offsets,
        follow=opts.follow,
    )


# -- signals ----------------------------------------------------------------------------------


class _Stopper:
    """SIGINT and SIGTERM stop the replay. Outside a shielded section the signal raises
    ``KeyboardInterrupt`` at once (a slow sink or a sleep must not delay the stop); inside one
    (bookkeeping and the group commit after a batch was accepted) it waits for the end of the
    section. A second signal always stops at once."""

    def __init__(self) -> None:
        self.signum: int = 0
        self._shielded = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        again = self.signum != 0
        self.signum = signum
        if again or not self._shielded:
            raise KeyboardInterrupt

    @contextmanager
    def shielded(self) -> Iterator[None]:
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
        if self.signum and not self._shielded:
            raise KeyboardInterrupt


# -- progress ---------------------------------------------------------------------------------


class _Ui:
    """A rich progress bar on stderr when it is a terminal (and stdout is not the sink's
    terminal too); otherwise a plain line every ``PLAIN_PROGRESS_S``."""

    def __init__(self, quiet: bool, *, stdout_taken: bool) -> None:
        self.quiet = quiet
        live = sys.stderr.isatty() and not (stdout_taken and sys.stdout.isatty())
        self._rich = live and not quiet
        self._progress: Progress | None = None
        self._task: Any = None
        self._total: int | None = None
        self._done = 0
        self._started = time.monotonic()
        self._last_plain = self._started

    def start(self, total: int | None, label: str) -> None:
        self._total = total
        self._started = self._last_plain = time.monotonic()
        if not self._rich:
            return
        # The label names the topic and the sink (a path, a URL): data, not markup.
        columns: list[Any] = [TextColumn("{task.description}", markup=False)]
        if total is None:
            columns += [SpinnerColumn(), TextColumn("{task.completed:,} records")]
        else:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns += [_RateColumn(), TimeElapsedColumn()]
        if total is not None:
            columns += [TextColumn("ETA"), TimeRemainingColumn()]
        self._progress = Progress(*columns, console=console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self._done += n
        if self._progress is not None:
            self._progress.update(self._task, advance=n)
            return
        now = time.monotonic()
        if not self.quiet and now - self._last_plain >= PLAIN_PROGRESS_S:
            self._last_plain = now
            of = f" of {self._total:,}" if self._total is not None else ""
            rate = self._done / max(now - self._started, 1e-9)
            print(f"wharf: replay: {self._done:,}{of} records ({rate:,.0f}/s)", file=sys.stderr)

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"wharf: {message}", markup=False, highlight=False)
        else:
            print(f"wharf: {message}", file=sys.stderr)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


class _RateColumn(ProgressColumn):
    """Records per second (rich's speed columns speak bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or 0.0
        return Text(f"{speed:,.0f} rec/s")


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Replay:
    client: Client
    opts: ReplayOptions
    plan: Plan
    sink: Sink
    ui: _Ui
    stopper: _Stopper = field(default_factory=_Stopper)
    accepted: dict[int, int] = field(default_factory=dict)  # partition: next offset accepted
    committed: dict[int, int] = field(default_factory=dict)
    delivered: int = 0
    _poll_s: float = POLL_MIN_S

    def __post_init__(self) -> None:
        opts = self.opts
        self.merger = Merger(self.plan.cursors)
        self.cursors = {c.partition: c for c in self.plan.cursors}
        encode = None if opts.sink.kind == "wharf" else encoder_for(opts.output)
        self.batcher = SinkBatcher(opts.batch, encode)
        self.bucket = TokenBucket(opts.rate) if opts.rate is not None else None
        self.pacer = SpeedPacer(opts.speed, opts.max_gap_s) if opts.speed is not None else None

    def execute(self) -> int:
        """Run to the end, a signal or an error; the exit code."""
        status, error = "done", ""
        self.stopper.install()
        try:
            try:
                self.ui.start(self.plan.total, f"{self.opts.topic} → {self.sink.description}")
                self._loop()
                self._flush()
            except KeyboardInterrupt:
                status = "interrupted"
            except SinkClosed:
                status = "closed"
            except (WharfError, OSError) as exc:
                status, error = "failed", _one_line(exc)
            except Exception as exc:
                if os.environ.get("WHARF_DEBUG"):
                    raise
                status, error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            finally:
                self.ui.stop()
            try:
                with self.stopper.shielded():
                    self.sink.close()
            except KeyboardInterrupt:
                pass
            except (WharfError, OSError) as exc:
                if status in ("done", "closed"):
                    status, error = "failed", f"closing the sink: {_one_line(exc)}"
        finally:
            self.stopper.uninstall()
        return self._report(status, error)

    # -- main loop

    def _loop(self) -> None:
        merger, batcher = self.merger, self.batcher
        while True:
            ev = merger.next_event()
            if isinstance(ev, NeedFetch):
                for cur in ev.cursors:
                    self._fetch(cur)
                continue
            if ev is DONE:
                return
            if ev is IDLE:
                self._flush()
                self._wait_for_records()
                continue
            assert isinstance(ev, Hit)
            wait = 0.0
            if self.bucket is not None:
                wait = self.bucket.take(1)
            elif self.pacer is not None:
                wait = self.pacer.delay(ev.ts)
            if wait > 0:
                self._flush()  # what is due goes now, before the pause
                time.sleep(wait)
            if batcher.add(ev):
                self._flush()

    def _flush(self) -> None:
        batch = self.batcher.take()
        if batch is None:
            return
        self.sink.deliver(batch)
        with self.stopper.shielded():
            commits = batch.commits()
            self.accepted.update(commits)
            self.delivered += len(batch)
            self.ui.advance(len(batch))
            if self.opts.group is not None:
                self.sink.sync()
                self._commit(commits)

    def _commit(self, offsets: dict[int, int]) -> None:
        group = self.opts.group
        assert group is not None
        for p, off in sorted(offsets.items()):
            if self.committed.get(p) == off:
                continue
            req = CommitRequest(self.opts.topic, p, off)
            self._retrying(partial(self.client.commit, group, req))
            self.committed[p] = off

    def _fetch(self, cur: Cursor) -> None:
        req = ConsumeRequest(offset=cur.position, max_bytes=FETCH_BYTES)
        read = partial(self.client.consume, self.opts.topic, cur.partition, req)
        try:
            answer: Consumed = self._retrying(read)
        except WharfError as exc:
            if not is_error(exc, OffsetOutOfRange):
                raise
            # Retention deleted what we were about to read: go on from the earliest kept.
            start = {b.partition: b for b in _bounds(self.client, self.opts.topic)}[
                cur.partition
            ].start_offset
            gap = self.merger.jump(cur, start)
            if gap is None:
                raise
            self.ui.note(
                f"partition {cur.partition}: offsets {gap[0]}..{gap[1] - 1} were deleted by "
                "retention before they were read; skipping them"
            )
            return
        end = answer.end
        gap = self.merger.feed(cur, answer.records, end.next_offset, end.end_offset)
        if gap[1] > gap[0]:
            self.ui.note(
                f"partition {cur.partition}: offsets {gap[0]}..{gap[1] - 1} are missing "
                "(deleted by retention?); skipping them"
            )
        if cur.stalled:
            self.ui.note(
                f"partition {cur.partition} ended at offset {cur.position}, before "
                f"the expected {cur.stop}"
            )

    def _wait_for_records(self) -> None:
        time.sleep(self._poll_s)
        bounds = self._retrying(lambda: _bounds(self.client, self.opts.topic))
        news = self.merger.update_ends({b.partition: b.end_offset for b in bounds})
        self._poll_s = POLL_MIN_S if news else min(self._poll_s * 2, POLL_MAX_S)

    def _retrying(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried for ``--retry-for`` while it fails with an error a retry can help
        (the collector unreachable, restarting, or its store unavailable for now)."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn()
            except WharfError as exc:
                if not exc.retriable:
                    raise
                attempt += 1
                delay = backoff_delay(attempt - 1, 0.2, 5.0)
                if time.monotonic() - started + delay > self.opts.retry_for_s:
                    raise
                self.ui.note(f"{exc}; retrying in {delay:.1f} s")
                time.sleep(delay)

    # -- the end

    def _report(self, status: str, error: str) -> int:
        opts = self.opts
        if status == "done" and not self.ui.quiet:
            extra = ""
            if isinstance(self.sink, WharfSink) and self.sink.duplicates:
                extra = f"; {self.sink.duplicates} batches were stored before and not again"
            committed = f", committed for group {opts.group!r}" if opts.group else ""
            print(
                f"wharf: replayed {self.delivered:,} records of {opts.topic!r} to "
                f"{self.sink.description} in {self.ui.elapsed:.1f} s{committed}{extra}",
                file=sys.stderr,
            )
        if status in ("done", "closed"):
            return 0
        if status == "failed":
            print(f"wharf: {error}", file=sys.stderr)
        else:
            print(
                f"wharf: stopped after {self.delivered:,} records; everything before the "
                "resume point was accepted by the sink"
                + (f" and committed for group {opts.group!r}" if opts.group else ""),
                file=sys.stderr,
            )
        print(f"wharf: resume with: {self.resume_command()}", file=sys.stderr)
        if status == "failed":
            return EXIT_ERROR
        return EXIT_INTERRUPTED.get(signal.Signals(self.stopper.signum or signal.SIGINT), 130)

    def resume_command(self) -> str:
        """The command that continues where this one stopped."""
        positions = {
            c.partition: self.accepted.get(c.partition, c.start) for c in self.plan.cursors
        }
        return self.opts.resume_command(positions, {c.partition: c.stop for c in self.plan.cursors})


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, WharfError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__
