"""The pure pieces: Tail (events, offsets, forced cuts), the ack ledger, batch spans,
checkpoint files, globs, the spool and the outbox's order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from parsers.multiline import MultilineConfig
from shipper.batcher import Batcher, FileTrack
from shipper.checkpoint import CheckpointStore, FileCheckpoint, State, decode, encode
from shipper.config import InputConfig
from shipper.discovery import Matcher, base_dir, glob_regex
from shipper.outbox import Outbox
from shipper.spool import OutBatch, Spool
from shipper.tail import Event, Tail
from wharf import batch as wb
from wharf.record import Record


def _feed_all(tail: Tail, data: bytes, step: int) -> list[Event]:
    out: list[Event] = []
    pos = 0
    while pos < len(data):
        room = tail.room()
        n = step if room is None else min(step, room)
        out += tail.feed(data[pos : pos + n], 0)
        pos += n
    return out


def test_tail_offsets_cover_the_file_exactly_whatever_the_chunking() -> None:
    data = b"one\r\ntwo\n\nthree \xff\nfour"
    for step in (1, 2, 3, 7, 100):
        t = Tail(0, max_line_bytes=100)
        events = _feed_all(t, data, step)
        assert [(e.offset, e.end, e.text) for e in events] == [
            (0, 5, "one"),
            (5, 9, "two"),
            (9, 10, ""),
            (10, 18, "three \ufffd"),
        ]
        assert t.emitted_end == 18 and t.pending
        assert t.flush(0) == [Event(18, 22, "four")]


def test_forced_cut_is_repeated_on_reread() -> None:
    """A timer cut "de|fgh": a re-read after a crash must cut at the same offset, or the
    re-sent "defgh" (offset 4) would be dropped whole by the collector (mark 6)."""
    first = Tail(0, max_line_bytes=100)
    events = first.feed(b"abc\nde", 0) + first.flush_due(10**10, 10**9)
    boundary = first.emitted_end
    events += first.feed(b"fgh\n", 0)
    assert [(e.offset, e.text) for e in events] == [(0, "abc"), (4, "de"), (6, "fgh")]
    again = Tail(0, max_line_bytes=100, forced=[boundary])
    assert _feed_all(again, b"abc\ndefgh\n", 100) == events
    naive = Tail(0, max_line_bytes=100)
    assert [e.text for e in naive.feed(b"abc\ndefgh\n", 0)] == ["abc", "defgh"]


def test_tail_multiline_event_offsets_span_its_lines() -> None:
    text = (
        b"start\n"
        b"java.lang.RuntimeException: boom\n\tat a.B.c(B.java:1)\n\tat a.B.d(B.java:2)\n"
        b"after\n"
    )
    for step in (1, 5, 64):
        t = Tail(0, max_line_bytes=100, multiline=MultilineConfig(preset="java"))
        events = _feed_all(t, text, step) + t.flush(0)
        assert [e.text.count("\n") for e in events] == [0, 2, 0]
        assert events[1].offset == 6 and events[1].end == text.index(b"after")
        assert events[-1].end == len(text)


def test_ack_ledger_advances_only_over_a_contiguous_prefix() -> None:
    t = FileTrack("f", 0)
    t.sent(1, 100, 11)
    t.sent(2, 200, 22)
    t.sent(3, 300, 33)
    assert not t.ack(2) and t.acked == 0
    assert t.ack(1) and (t.acked, t.check) == (200, 22)
    assert t.ack(3) and t.acked == 300 and not t.busy


def test_batch_spans_are_contiguous_per_file() -> None:
    b = Batcher(batch_bytes=50, linger_s=1.0)
    a, c = FileTrack("a", 0), FileTrack("c", 10)
    cuts = []
    for k in range(6):
        rec = Record(ts=1, line="x" * 19, file_id="a", offset=k * 20)
        cut = b.add("t", a, rec, (k + 1) * 20, 20, 0.0)
        if k == 2:
            b.add("t", c, Record(ts=1, line="y", file_id="c", offset=10), 12, 2, 0.0)
        if cut:
            cuts.append(cut)
            for track, end in cut.tracks:
                track.sent(len(cuts), end)
    spans = [s for cut in cuts for s in cut.spans if s.file_id == "a"]
    assert [(s.start, s.end) for s in spans] == [(0, 60), (60, 120)]
    assert any(s == wb.Span("c", 10, 12) for cut in cuts for s in cut.spans)


def test_checkpoint_roundtrip_damage_and_fallback(tmp_path: Path) -> None:
    state = State(files=[FileCheckpoint(file_id="x", path="/a", dev=1, ino=2, offset=5)])
    assert decode(encode(state)) == state
    for bad in (b"", b"junk", encode(state)[:-3], encode(state).replace(b'"x"', b'"y"')):
        with pytest.raises(ValueError):
            decode(bad)
    store = CheckpointStore(tmp_path)
    assert store.load().first_start
    store.save(state)
    newer = State(files=[FileCheckpoint(file_id="x", path="/a", dev=1, ino=2, offset=9)])
    store.save(newer)
    assert store.load().state == newer
    store.path.write_bytes(b"")
    loaded = store.load()
    assert loaded.state == state and "previous copy" in loaded.warning
    store.prev.write_bytes(b"\x00")
    lost = store.load()
    assert lost.state is None and not lost.first_start and "no usable" in lost.warning


def test_globs() -> None:
    r = glob_regex("/var/log/**/*.log")
    assert r.match("/var/log/a.log") and r.match("/var/log/x/y/a.log")
    assert not r.match("/var/log/a.log.1")
    assert not glob_regex("/var/log/*.log").match("/var/log/x/a.log")
    assert glob_regex("/l/app[0-9].log").match("/l/app7.log")
    assert base_dir("/var/log/**/*.log") == (Path("/var/log"), True)
    assert base_dir("/var/log/nginx/*.log") == (Path("/var/log/nginx"), False)
    m = Matcher(InputConfig(paths=["/l/app.log*"], topic="t", exclude=["*.old", "/l/app.log.s*"]))
    assert m.matches("/l/app.log") and m.matches("/l/app.log.1")
    for path in ("/l/app.log.2.gz", "/l/app.log.3.zst", "/l/app.log.old", "/l/app.log.skip"):
        assert not m.matches(path), path


def test_spool_roundtrip_and_damaged_item(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "spool", 1 << 20)
    items = [
        OutBatch(k, "t", "h", [wb.Span("f", k * 10, k * 10 + 10)], 1, 3, b"abc") for k in (1, 2, 3)
    ]
    for it in items:
        assert sp.write(it)
    (tmp_path / "spool" / f"{2:020d}.wsp").write_bytes(b"WSP1 torn")
    again = Spool(tmp_path / "spool", 1 << 20)
    loaded = again.load()
    assert [i.seq for i in loaded] == [1, 3] and again.dropped_corrupt == 1
    assert again.read(loaded[1]) == b"abc" and loaded[1].spans == [wb.Span("f", 30, 40)]
    again.remove(loaded[0])
    assert again.count == 1


def test_outbox_spills_everything_unacked_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        sp = Spool(tmp_path / "spool", 1 << 20)
        box = Outbox(sp, memory_bytes=10)
        first = OutBatch(1, "t", "h", [], 1, 6, b"aaaaaa")
        box.put(first)
        got = await box.get()  # in flight
        assert got is first and not box.spooling
        box.put(OutBatch(2, "t", "h", [], 1, 6, b"bbbbbb"))  # passes the memory bound
        assert box.spooling and sp.count == 2  # the one in flight was spooled too
        box.put(OutBatch(3, "t", "h", [], 1, 6, b"cccccc"))
        assert [i.seq for i in Spool(tmp_path / "spool", 1 << 20).load()] == [1, 2, 3]
        second = await box.get()
        assert second.data == b"bbbbbb"  # read back from the spool, in order
        box.done(first)
        assert box.spooling
        third = await box.get()
        assert third.data == b"cccccc"
        box.done(second)
        box.done(third)
        assert not box.spooling and sp.count == 0 and box.mem == 0

    asyncio.run(main())


def test_a_long_line_cut_by_the_timer_is_counted_and_its_rest_is_never_a_line() -> None:
    """A partial line over max_line_bytes that a timer cuts: its head is one truncated event,
    and the rest of it, up to its newline, is dropped, as it is for any over-long line, never
    shipped as a line of its own; whatever the chunking, and again on a re-read after a crash
    (from before the cut: the forced boundary; from the cut: the skip point)."""
    head, rest = b"n=1\n" + b"y" * 50, b"z" * 30 + b"\r\nn=2\n"
    for step in (1, 3, 7, 100):
        t = Tail(0, max_line_bytes=10)
        events = _feed_all(t, head, step) + t.flush_due(10**10, 10**9)
        boundary = t.emitted_end
        events += _feed_all(t, rest, step)
        assert [(e.offset, e.text) for e in events] == [(0, "n=1"), (4, "y" * 10), (86, "n=2")]
        assert boundary == len(head) and t.emitted_end == len(head + rest)
        assert (t.lines, t.truncated_lines) == (3, 1)
        assert t.take_counts() == (3, 1, 0) and t.take_counts() == (0, 0, 0)
        again = Tail(0, max_line_bytes=10, forced=[boundary])
        assert _feed_all(again, head + rest, step) == events
        resumed = Tail(boundary, max_line_bytes=10, skip=True)
        assert _feed_all(resumed, rest, step) == events[-1:]
        assert resumed.skip_points == [boundary]


def test_a_long_utf16_line_cut_by_the_timer_drops_its_rest_up_to_its_newline() -> None:
    text = ("b\n" + "y" * 40).encode("utf-16le")
    rest = ("z" * 9 + "\nc\n").encode("utf-16le")
    for step in (1, 3, 5, 200):
        t = Tail(0, max_line_bytes=10, encoding="utf-16le")
        events = _feed_all(t, text, step) + t.flush_due(10**10, 10**9)
        events += _feed_all(t, rest, step)
        assert [e.text for e in events] == ["b", "y" * 5, "c"], step
        assert events[-1].end == len(text + rest) and t.truncated_lines == 1


def test_spans_stay_contiguous_when_a_cut_waits_before_it_is_sent() -> None:
    """A cut held back (its file in no saved checkpoint yet, checkpoint writes failing) and a
    later cut of the same file: the later span starts where the held one ends."""
    b = Batcher(batch_bytes=1000, linger_s=1.0)
    a = FileTrack("a", 0)
    b.add("t", a, Record(ts=1, line="x", file_id="a", offset=0), 10, 10, 0.0)
    first = b.cut("t")
    b.add("t", a, Record(ts=1, line="x", file_id="a", offset=10), 20, 10, 0.0)
    second = b.cut("t")
    assert first is not None and second is not None
    assert [(s.start, s.end) for s in first.spans + second.spans] == [(0, 10), (10, 20)]
