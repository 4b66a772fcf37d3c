"""The pure core of ``wharf replay`` (``cli.replay``): sink addresses, pacing with an injected
clock, formats, the cross-partition merge driven like the CLI drives it, batches and plans."""

from __future__ import annotations

import heapq
import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.render import encoder_for, rfc3339_ns
from cli.replay import (
    DONE,
    IDLE,
    Bounds,
    Cursor,
    Merger,
    NeedFetch,
    OffsetSpec,
    ReplayOptions,
    SinkBatcher,
    SpeedPacer,
    TokenBucket,
    backoff_delay,
    make_plan,
    offset_args,
    parse_offsets,
    parse_rate,
    parse_retry_after,
    parse_sink,
    parse_speed,
    select_partitions,
)
from wharf.api import Hit
from wharf.errors import InvalidArgument, LocalError


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- sinks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "attrs"),
    [
        ("stdout", "stdout", {}),
        ("-", "stdout", {}),
        ("file:out.ndjson", "file", {"path": "out.ndjson"}),
        ("file:/var/tmp/x", "file", {"path": "/var/tmp/x"}),
        ("file:///var/tmp/x", "file", {"path": "/var/tmp/x"}),
        ("http://h:8080/in?x=1", "http", {"url": "http://h:8080/in?x=1"}),
        ("https://h/in", "http", {"url": "https://h/in"}),
        ("tcp://127.0.0.1:5170", "tcp", {"host": "127.0.0.1", "port": 5170}),
        ("tcp://[::1]:5170", "tcp", {"host": "::1", "port": 5170, "address": "[::1]:5170"}),
        ("wharf://c1/app-copy", "wharf", {"host": "c1", "port": 7070, "topic": "app-copy"}),
        ("wharf://c1:7171/x", "wharf", {"address": "c1:7171", "topic": "x"}),
    ],
)
def test_sink_forms(text: str, kind: str, attrs: dict[str, Any]) -> None:
    spec = parse_sink(text)
    assert spec.kind == kind
    for k, v in attrs.items():
        assert getattr(spec, k) == v


@pytest.mark.parametrize(
    "text",
    [
        "", "file:", "file://relative", "file:dir/", "http://", "http://h:99999/",
        "https://u:p@h/", "http://h/#frag", "tcp://h", "tcp://:80", "tcp://h:80/path",
        "wharf://h:1/", "wharf://h:1/UPPER", "wharf://h:x/t", "udp://h:1", "stdout2",
    ],
)  # fmt: skip
def test_bad_sinks(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_sink(text)


# -- pace -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "per_s"),
    [("500/s", 500), ("500", 500), ("120/m", 2), ("7200/h", 2), ("1.5/sec", 1.5), (".5", 0.5)],
)
def test_rates(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("text", ["banana", "", "0", "-1/s", "5/d", "1e3", "200000000/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid rate"):
        parse_rate(text)


def test_speeds() -> None:
    assert parse_speed("10") == 10 and parse_speed("2.5x") == 2.5
    for bad in ("0", "-2", "nan", "inf", "fast", ""):
        with pytest.raises(InvalidArgument, match="invalid speed"):
            parse_speed(bad)


def test_token_bucket_keeps_the_average() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)  # burst 1
    waits = []
    for _ in range(21):
        w = bucket.take()
        waits.append(w)
        clock.now += w
    assert waits[0] == 0
    assert clock.now - 100.0 == pytest.approx(2.0)  # 20 records beyond the burst at 10/s
    big = TokenBucket(1000, clock=clock)  # burst 100: a batch's worth goes at once
    assert all(big.take() == 0 for _ in range(100))
    assert big.take() == pytest.approx(0.001)


def test_speed_pacer_spacing_backwards_and_gaps() -> None:
    clock = Clock()
    s = 1_000_000_000
    pacer = SpeedPacer(10, max_gap_s=5, clock=clock)
    assert pacer.delay(0) == 0
    assert pacer.delay(10 * s) == pytest.approx(1.0)
    clock.now += 1.0  # the caller slept
    assert pacer.delay(10 * s) == 0  # same ts: with the previous one
    assert pacer.delay(3 * s) == 0  # earlier than the newest seen: at once, never backwards
    clock.now += 0.4  # delivering took a while: the next pause is shorter, no drift
    assert pacer.delay(20 * s) == pytest.approx(0.6)
    clock.now += 0.6
    # An hour later at 10x is 360 s; cut to 5 s, and later spacing is kept from there.
    assert pacer.delay(3620 * s) == pytest.approx(5.0)
    clock.now += 5.0
    assert pacer.delay(3630 * s) == pytest.approx(1.0)
    assert pacer.gaps_cut == 1


def test_backoff_grows_with_jitter_and_caps() -> None:
    assert backoff_delay(0, 0.1, 10, rand=lambda: 0.0) == pytest.approx(0.05)
    assert backoff_delay(3, 0.1, 10, rand=lambda: 1.0) == pytest.approx(0.8)
    assert backoff_delay(50, 0.1, 10, rand=lambda: 0.5) == pytest.approx(7.5)
    r = random.Random(1)
    assert all(0.5 <= backoff_delay(4, 0.1, 1, rand=r.random) <= 1 for _ in range(100))


def test_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("7") == 7
    when = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(format_datetime(when, usegmt=True), now) == pytest.approx(30)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(format_datetime(when, usegmt=True), now + 60) == 0


# -- formats ----------------------------------------------------------------------------------

REC = {
    "topic": "app",
    "partition": 2,
    "offset": 9,
    "ts": 1_714_564_800_123_456_789,
    "host": "web-1",
    "source": "/var/log/a b.log",
    "line": 'GET /x "quoted"\tdone',
    "fields": {"status": 500, "ok": False, "path": "/x", "host": "spoof", "tags": ["a"]},
    "level": "error",
}


def test_formats() -> None:
    hit = Hit(**REC)
    assert json.loads(encoder_for("json")(hit)) == REC
    assert encoder_for("raw")(hit) == b'GET /x "quoted"\tdone\n'
    assert encoder_for("logfmt")(hit) == (
        b"ts=2024-05-01T12:00:00.123456789Z topic=app partition=2 offset=9 host=web-1 "
        b'source="/var/log/a b.log" level=error status=500 ok=false path=/x '
        b'fields.host=spoof tags="[\\"a\\"]" line="GET /x \\"quoted\\"\\tdone"\n'
    )
    assert rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z"
    with pytest.raises(InvalidArgument, match="unknown output format"):
        encoder_for("xml")


# -- the merge --------------------------------------------------------------------------------


def _rec(p: int, o: int, ts: int) -> Hit:
    return Hit("t", p, o, ts, "", "", f"{p}:{o}", {}, None)


def drive(merger: Merger, data: dict[int, list[Hit]], chunk: int) -> list[Any]:
    """Run the merger the way the CLI does, answering fetches from ``data``."""
    out = []
    for _ in range(100_000):
        ev = merger.next_event()
        if isinstance(ev, NeedFetch):
            for cur in ev.cursors:
                recs = data[cur.partition]
                part = recs[cur.position : cur.position + chunk]
                merger.feed(cur, part, cur.position + len(part), len(recs))
        elif ev is DONE or ev is IDLE:
            return out
        else:
            out.append(ev)
    raise AssertionError("the merge did not finish")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 50), max_size=30), min_size=1, max_size=5),
    st.integers(1, 7),
)
def test_merge_is_a_timestamp_merge_keeping_partition_order(
    stamps: list[list[int]], chunk: int
) -> None:
    data = {p: [_rec(p, o, ts) for o, ts in enumerate(tss)] for p, tss in enumerate(stamps)}
    cursors = [Cursor(p, 0, stop=len(r), known_end=len(r)) for p, r in data.items()]
    got = drive(Merger(cursors), data, chunk)
    want = list(heapq.merge(*(data[p] for p in sorted(data)), key=lambda r: r.ts))
    assert got == want


def test_stops_skips_and_follow() -> None:
    data = {0: [_rec(0, o, o * 10) for o in range(10)]}
    # --to-time 45 and --from-time 20 without the lookup: filter while reading.
    cur = Cursor(0, 0, stop=10, known_end=10, stop_ts=45, skip_ts=20)
    assert [r.offset for r in drive(Merger([cur]), data, 3)] == [2, 3, 4]
    assert cur.skipped == 2 and cur.stop == 5
    # Following: IDLE at the end, more after the ends move.
    follow = Cursor(0, 8, stop=None, known_end=10)
    m = Merger([follow])
    assert [r.offset for r in drive(m, data, 5)] == [8, 9]
    assert m.next_event() is IDLE
    data[0] += [_rec(0, 10, 100)]
    assert not m.update_ends({0: 10})
    assert m.update_ends({0: 11})
    assert [r.offset for r in drive(m, data, 5)] == [10]


def test_a_partition_that_stops_short_ends_instead_of_spinning() -> None:
    cur = Cursor(0, 0, stop=10, known_end=10)
    m = Merger([cur])
    assert isinstance(m.next_event(), NeedFetch)
    m.feed(cur, [], 0, 10)  # nothing, no progress
    assert cur.stalled and m.next_event() is DONE


def test_gaps_are_reported_and_jumped() -> None:
    cur = Cursor(0, 0, stop=10, known_end=10)
    m = Merger([cur])
    assert m.feed(cur, [_rec(0, 4, 1), _rec(0, 5, 1)], 6, 10) == (0, 4)
    assert m.jump(cur, 8) == (6, 8)
    assert m.jump(cur, 3) is None


# -- batches ----------------------------------------------------------------------------------


def test_batcher_ranges_keys_and_limits() -> None:
    b = SinkBatcher(3, encoder_for("raw"))
    assert b.take() is None
    assert not b.add(_rec(1, 5, 0))
    assert not b.add(_rec(0, 9, 0))
    assert b.add(_rec(1, 6, 0))
    batch = b.take()
    assert batch is not None and len(batch) == 3
    assert batch.lines == [b"1:5\n", b"0:9\n", b"1:6\n"]
    assert batch.commits() == {1: 7, 0: 10}
    assert batch.idempotency_key("app") == "app-0-9-9_app-1-5-6"
    small = SinkBatcher(1000, encoder_for("raw"), max_bytes=8)
    assert not small.add(_rec(0, 0, 0)) and small.add(_rec(0, 1, 0))
    many = SinkBatcher(10_000, None)
    for p in range(100):
        many.add(_rec(p, 123456, 0))
    key = many.take()
    assert key is not None and len(key.idempotency_key("app")) < 100
    assert key.idempotency_key("app") == key.idempotency_key("app")


# -- positions and plans ----------------------------------------------------------------------


def test_offset_specs() -> None:
    spec = parse_offsets(["5", "1:7,2:9"], "--from-offset")
    assert (spec.get(0), spec.get(1), spec.get(2)) == (5, 7, 9)
    assert not parse_offsets([], "--to-offset")
    assert offset_args("--from-offset", {2: 9, 0: 1}) == [
        "--from-offset", "0:1", "--from-offset", "2:9",
    ]  # fmt: skip
    for bad in (["x"], ["1:2:3"], ["-1"], ["1", "2"], ["0:1", "0:2"]):
        with pytest.raises(InvalidArgument):
            parse_offsets(bad, "--from-offset")


BOUNDS = [Bounds(0, 0, 100), Bounds(1, 50, 80), Bounds(2, 0, 0)]


def test_plan_defaults_group_and_retention() -> None:
    plan = make_plan(BOUNDS)
    assert [(c.position, c.stop) for c in plan.cursors] == [(0, 100), (50, 80), (0, 0)]
    assert plan.total == 130
    grp = make_plan(BOUNDS, committed={0: 90, 1: 10})
    assert [(c.position, c.stop) for c in grp.cursors] == [(90, 100), (50, 80), (0, 0)]
    assert "offsets 10..49 were deleted by retention" in grp.warnings[0]
    follow = make_plan(BOUNDS, follow=True)
    assert follow.total is None and all(c.stop is None for c in follow.cursors)


def test_plan_offsets_and_times() -> None:
    plan = make_plan(
        BOUNDS[:2],
        from_offsets=OffsetSpec(60, {0: 3}),
        to_offsets=OffsetSpec(None, {1: 70}),
    )
    assert [(c.position, c.stop) for c in plan.cursors] == [(3, 100), (60, 70)]
    timed = make_plan(BOUNDS[:2], from_ts=5, from_time_offsets={0: 40, 1: 60}, to_ts=9,
                      to_time_offsets={0: 45, 1: 99})  # fmt: skip
    assert [(c.position, c.stop, c.skip_ts) for c in timed.cursors] == [
        (40, 45, None),
        (60, 80, None),
    ]
    fallback = make_plan(BOUNDS[:1], from_ts=5, to_ts=9)
    c = fallback.cursors[0]
    assert (c.position, c.stop, c.skip_ts, c.stop_ts) == (0, 100, 5, 9)
    with pytest.raises(InvalidArgument, match="past the end of partition 1"):
        make_plan(BOUNDS, from_offsets=OffsetSpec(90))
    with pytest.raises(InvalidArgument, match="before --from-offset"):
        make_plan(BOUNDS[:1], from_offsets=OffsetSpec(9), to_offsets=OffsetSpec(3))
    with pytest.raises(InvalidArgument, match="names partition 7"):
        make_plan(BOUNDS, to_offsets=OffsetSpec(None, {7: 1}))
    assert [b.partition for b in select_partitions(BOUNDS, [2, 0, 2])] == [0, 2]
    with pytest.raises(InvalidArgument, match=r"partitions 0\.\.2"):
        select_partitions(BOUNDS, [3])


def test_options_and_resume_command() -> None:
    opts = ReplayOptions.build(
        topic="app",
        partitions=[2, 0, 2],
        from_offset=["5"],
        rate="100/s",
        sink="https://h/in",
        sink_headers=["Authorization: Bearer s3cret", "X-Team: ops"],
        batch=50,
    )
    assert opts.partitions == (0, 2) and opts.rate == 100
    cmd = opts.resume_command({0: 40, 2: 7}, {0: 90, 2: 12})
    assert cmd == (
        "wharf replay -t app --partition 0 --partition 2 --from-offset 0:40 --from-offset 2:7 "
        "--to-offset 0:90 --to-offset 2:12 --rate 100/s --sink https://h/in --batch 50 "
        "--sink-header 'Authorization: ...' --sink-header 'X-Team: ops'"
    )
    grp = ReplayOptions.build(topic="app", group="etl", to_ts=0, sink="file:a b.ndjson")
    assert grp.resume_command({0: 1}, {0: 2}) == (
        "wharf replay -t app --group etl --to-time 1970-01-01T00:00:00.000000000Z "
        "--sink 'file:a b.ndjson'"
    )
    follow = ReplayOptions.build(topic="app", group="etl", follow=True, output="raw")
    assert follow.resume_command({}, {0: None}) == (
        "wharf replay -t app --group etl --follow --sink stdout -o raw"
    )
    for bad, message in (
        ({"sink_headers": ["NoColon"]}, "write 'Name: value'"),
        ({"from_ts": 5, "to_ts": 5}, "empty time range"),
        ({"topic": "Bad"}, "invalid topic name"),
    ):
        with pytest.raises(LocalError, match=message):
            ReplayOptions.build(**{"topic": "app", "sink": "http://h/x", **bad})
