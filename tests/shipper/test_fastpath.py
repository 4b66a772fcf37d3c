"""The shipper's zero-copy path, piece by piece: the tail's runs of whole lines against its
per-line events (any bytes, any chunking), the batcher's cuts of runs against its cuts of
records, and a file's batches built from runs against the ones built from records."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from parsers import Record, get_parser
from parsers.lines import LineRun
from shipper import batcher as batcher_module
from shipper.batcher import Batcher, Cut, FileTrack
from shipper.runs import RunParts
from shipper.tail import Event, Tail
from tests.parsers._vectors import LOGS_DIR
from wharf import batch as wb

# Pieces of file content: plain text, CRLF and lone CR, NUL, invalid UTF-8 (a stray byte, a
# cut character), a multi-byte character, and lines around and past the length limits below.
_PIECES = [
    b"a",
    b"line of text",
    b"\n",
    b"\n",
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xff",
    b"\xe2\x82",
    "é€".encode(),
    b"x" * 40,
    b"y" * 5000,
]
_content = st.lists(st.sampled_from(_PIECES), max_size=50).map(b"".join)


def _expand(parts: list[Any]) -> list[Event]:
    """The events a list of ``feed_parts`` parts stands for."""
    out: list[Event] = []
    for part in parts:
        if isinstance(part, LineRun):
            texts = part.blob.decode("utf-8").split("\n")
            assert len(texts) == part.lines
            bounds = list(accumulate((len(t.encode()) + 1 for t in texts), initial=part.offset))
            assert bounds[-1] == part.end
            out += [Event(o, e, t) for o, e, t in zip(bounds, bounds[1:], texts, strict=False)]
        else:
            offsets, ends, texts = part
            out += [Event(o, e, t) for o, e, t in zip(offsets, ends, texts, strict=True)]
    return out


def _chunks(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    pos = 0
    for c in sorted(set(cuts)):
        if pos < c < len(data):
            yield data[pos:c]
            pos = c
    if pos < len(data):
        yield data[pos:]


def _feed_all(
    tail: Tail, data: bytes, cuts: list[int], fast: bool
) -> tuple[list[Event], list[Any]]:
    """Feed ``data`` in the chunks ``cuts`` make (each within ``room()``, as the reader reads);
    the events, and the state seen after each feed."""
    events: list[Event] = []
    seen: list[Any] = []
    for chunk in _chunks(data, cuts):
        left = chunk
        while left:
            room = tail.room()
            if room == 0:
                # A boundary inside a stretch being skipped (random boundaries can put one
                # there): the tail takes nothing more, the same either way.
                seen.append("stalled")
                return events, seen
            n = len(left) if room is None else min(len(left), room)
            piece, left = left[:n], left[n:]
            if fast:
                events += _expand(tail.feed_parts(piece, 0))
            else:
                events += tail.feed(piece, 0)
            seen.append(
                (tail.emitted_end, tail.next_offset, tail.pending, tail.take_counts(), len(events))
            )
    events += tail.flush(0)
    seen.append((tail.emitted_end, tail.next_offset, tail.take_counts(), tail.skipping))
    return events, seen


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=_content,
    cuts=st.lists(st.integers(0, 12_000), max_size=8),
    limit=st.sampled_from([1, 3, 16, 64, 4096, 1 << 20]),
    forced=st.lists(st.integers(1, 12_000), max_size=3),
)
@example(data=b"abc\ndef\n", cuts=[], limit=1 << 20, forced=[])
@example(data=b"abc\r\ndef\nghi", cuts=[2, 6], limit=1 << 20, forced=[])
@example(data=b"y" * 5000 + b"\nab\n", cuts=[], limit=4096, forced=[])
@example(data=b"ab\xffc\nd\n\n", cuts=[3], limit=1 << 20, forced=[5])
def test_runs_are_the_events_of_the_per_line_path(
    data: bytes, cuts: list[int], limit: int, forced: list[int]
) -> None:
    """Any bytes (CRLF, lone CR, NUL, invalid UTF-8, over-long lines, no final newline) in any
    chunking, with forced boundaries from an earlier run: the zero-copy parts expand to the
    same events, byte spans and counters as ``feed``, and the tail's state (what may be
    checkpointed, what is held) is the same after every read."""
    slow = Tail(0, max_line_bytes=limit, forced=forced)
    fast = Tail(0, max_line_bytes=limit, forced=forced)
    assert _feed_all(fast, data, cuts, fast=True) == _feed_all(slow, data, cuts, fast=False)


def test_a_clean_chunk_is_one_run_of_the_bytes_as_read() -> None:
    tail = Tail(100, max_line_bytes=1 << 20)
    parts = tail.feed_parts(b"held part", 0)
    assert parts == [] and tail.pending
    parts = tail.feed_parts(b" ends\nline two\nline three\npartial", 0)
    assert parts[0] == ([100], [115], ["held part ends"])
    assert parts[1] == LineRun(b"line two\nline three", 2, 115)
    assert tail.emitted_end == 135 and tail.next_offset == 142
    assert tail.take_counts() == (3, 0, 0)


@pytest.mark.parametrize(
    "chunk",
    [b"a\r\nb\n", b"a\xffb\nc\n", b"x" * 20 + b"\nb\n"],
    ids=["crlf", "invalid-utf8", "over-long"],
)
def test_chunks_that_need_repair_take_the_per_line_path(chunk: bytes) -> None:
    tail = Tail(0, max_line_bytes=10)
    parts = tail.feed_parts(chunk, 0)
    assert len(parts) == 1 and not isinstance(parts[0], LineRun)


@pytest.mark.parametrize("kw", [{"encoding": "utf-16le"}, {"container": "cri"}])
def test_tails_that_transform_lines_never_give_runs(kw: dict[str, Any]) -> None:
    tail = Tail(0, max_line_bytes=1 << 20, **kw)
    assert not any(isinstance(p, LineRun) for p in tail.feed_parts(b"a\nb\nc\n", 0))


# -- the batcher: cutting runs where it cuts records -------------------------------------------


def _records_of(run: wb.Run) -> tuple[list[Record], list[int], list[int]]:
    recs = run.records()
    ends = [r.offset + len(r.line.encode()) + 1 for r in recs]
    return recs, ends, [e - r.offset for r, e in zip(recs, ends, strict=True)]


def _shape(cuts: list[Cut]) -> list[Any]:
    return [(c.topic, c.records, c.spans, c.text_bytes, c.count) for c in cuts]


_lines = st.lists(st.text("ab", max_size=12), min_size=1, max_size=40)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    runs=st.lists(_lines, min_size=1, max_size=4),
    batch_bytes=st.integers(1, 120),
    max_records=st.integers(1, 30),
    before=st.integers(0, 5),
)
def test_runs_are_cut_at_the_records_add_many_cuts_at(
    runs: list[list[str]], batch_bytes: int, max_records: int, before: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batcher_module, "MAX_BATCH_RECORDS", max_records)
        by_run, by_record = Batcher(batch_bytes, 1.0), Batcher(batch_bytes, 1.0)
        t_run, t_rec = FileTrack("f", 0), FileTrack("f", 0)
        other_run, other_rec = FileTrack("g", 0), FileTrack("g", 0)
        cuts_run: list[Cut] = []
        cuts_rec: list[Cut] = []
        # Records of another file already pending, so runs start mid-batch.
        for i in range(before):
            r = Record(ts=0, line="zz", file_id="g", offset=3 * i)
            cuts_run += [c for c in [by_run.add("t", other_run, r, 3 * i + 3, 3, 0.0)] if c]
            cuts_rec += [c for c in [by_record.add("t", other_rec, r, 3 * i + 3, 3, 0.0)] if c]
        offset = 0
        for lines in runs:
            run = wb.Run(
                "\n".join(lines).encode(),
                len(lines),
                offset,
                ts=1,
                host="h",
                source="s",
                file_id="f",
            )
            offset = run.end
            cuts_run += by_run.add_run("t", t_run, run, 0.0)
            recs, ends, sizes = _records_of(run)
            cuts_rec += by_record.add_many("t", t_rec, recs, ends, sizes, 0.0)
        cuts_run += by_run.cut_all()
        cuts_rec += by_record.cut_all()
    assert _shape(cuts_run) == _shape(cuts_rec)
    assert all(c.count <= max_records for c in cuts_run)
    assert (t_run.span_start, other_run.span_start) == (t_rec.span_start, other_rec.span_start)


# -- a file, read both ways, into batches ------------------------------------------------------


def _ship(data: bytes, parser_name: str, fast: bool, extra: dict[str, Any]) -> list[Any]:
    """What the reader does with ``data`` (``shipper.intake``) down to built batches, by the
    zero-copy path or the per-line one; the records and spans of every batch."""
    parser = get_parser(parser_name)
    runs = RunParts(parser, extra)
    assert runs.takes_runs
    tail = Tail(0, max_line_bytes=1 << 20)
    batcher = Batcher(256 << 10, 1.0)
    track = FileTrack("1:2:x", 0)
    cuts: list[Cut] = []

    def records(offsets: list[int], texts: list[str]) -> list[Record]:
        out = []
        for off, text in zip(offsets, texts, strict=True):
            p = parser.parse(text)
            out.append(
                Record(
                    ts=p.ts if p.ts is not None else 7,
                    line=text,
                    host="h",
                    source="s",
                    fields={**p.fields, **extra},
                    level=p.level,
                    file_id="1:2:x",
                    offset=off,
                )
            )
        return out

    for i in range(0, len(data), 100_000):
        chunk = data[i : i + 100_000]
        parts = tail.feed_parts(chunk, 0) if fast else [tail.feed_columns(chunk, 0)]
        for part in parts:
            if isinstance(part, LineRun):
                run, _ = runs.part(part, now_ns=7, host="h", source="s", file_id="1:2:x")
                cuts += batcher.add_run("t", track, run, 0.0)
            else:
                offsets, ends, texts = part
                sizes = [e - o for o, e in zip(offsets, ends, strict=True)]
                cuts += batcher.add_many("t", track, records(offsets, texts), ends, sizes, 0.0)
    cuts += batcher.cut_all()
    out = []
    for seq, cut in enumerate(cuts):
        b = wb.Batch(cut.build(producer_id=bytes(16), producer_seq=seq))
        b.validate()
        out.append((b.spans, b.records()))
    return out


@pytest.mark.parametrize(
    ("log", "parser"),
    [
        ("apache_combined.log", "raw"),
        ("apache_combined.log", "clf"),
        ("nginxplus_status.jsonl", "json"),
        ("auth.log", "raw"),
    ],
)
def test_a_real_log_ships_the_same_records_and_spans_both_ways(log: str, parser: str) -> None:
    data = (LOGS_DIR / log).read_bytes()
    # A line broken by CRLF, one by invalid UTF-8 and a last line without its newline.
    data = data[:5000] + b"CRLF line\r\n" + data[5000:9000] + b"bad \xff byte\n" + data[9000:]
    data = data.rstrip(b"\n")
    extra = {"env": "prod"}
    assert _ship(data, parser, True, extra) == _ship(data, parser, False, extra)
