"""CRI and docker lines cut into fragments are joined into one record each: in the pure stage
(``shipper.container`` through ``shipper.tail``), through the batcher's group rule, and end to
end with a real collector and a shipper SIGKILLed while the fragments are being written."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import Record, get_parser
from shipper.batcher import Batcher, FileTrack
from shipper.tail import Event, Tail
from tests.harness import wait_caught_up
from tests.shipper.helpers import scene

T0 = "2024-05-01T12:00:00.000000001Z"


def cri(stream: str, tag: str, text: str, time: str = T0) -> bytes:
    return f"{time} {stream} {tag} {text}\n".encode()


def docker(stream: str, text: str, final: bool) -> bytes:
    entry = {"log": text + ("\n" if final else ""), "stream": stream, "time": T0}
    return json.dumps(entry).encode() + b"\n"


def run(tail: Tail, data: bytes, chunk: int) -> list[Event]:
    out: list[Event] = []
    for i in range(0, len(data), chunk):
        out += tail.feed(data[i : i + chunk], 0)
    return out + tail.flush(0)


def messages(events: list[Event], fmt: str = "cri") -> list[tuple[str, str, str]]:
    parser = get_parser(fmt)
    out = []
    for e in events:
        p = parser.parse(e.text)
        assert p.error is None, e.text
        out.append((p.fields["stream"], p.fields["tag"], p.fields["message"]))
    return out


def test_interleaved_fragments_leave_as_one_group_in_order_of_their_first_byte() -> None:
    p1 = cri("stdout", "P", "alpha-")
    other = cri("stderr", "F", "in between")
    f1 = cri("stdout", "F", "omega")
    after = cri("stdout", "F", "next")
    tail = Tail(0, max_line_bytes=1 << 20, container="cri")
    events = tail.feed(p1 + other, 0)
    assert events == [] and tail.pending  # "in between" waits for the line that holds it
    events = tail.feed(f1 + after, 0)
    assert messages(events) == [
        ("stdout", "F", "alpha-omega"),
        ("stderr", "F", "in between"),
        ("stdout", "F", "next"),
    ]
    group_end = len(p1 + other + f1)
    assert [(e.offset, e.end) for e in events] == [
        (0, group_end),
        (len(p1), group_end),  # its own bytes lie inside the group: it ends with the group
        (group_end, group_end + len(after)),
    ]
    assert events[0].text.startswith(T0 + " stdout F ")  # the first fragment's time
    assert tail.emitted_end == tail.next_offset and not tail.pending


def test_a_pending_fragment_inside_a_group_holds_the_whole_group() -> None:
    """``P_a(out) P_b(err) F_a(out)``: a is complete but b started inside it, so neither
    leaves until b does (else a checkpoint at a's end would skip b's first fragment)."""
    data = cri("stdout", "P", "a1-") + cri("stderr", "P", "b1-") + cri("stdout", "F", "a2")
    tail = Tail(0, max_line_bytes=1 << 20, container="cri")
    assert tail.feed(data, 0) == [] and tail.emitted_end == 0
    done = tail.feed(cri("stderr", "F", "b2"), 0)
    assert messages(done) == [("stdout", "F", "a1-a2"), ("stderr", "F", "b1-b2")]
    assert {e.end for e in done} == {tail.next_offset}


def test_incomplete_lines_are_flushed_with_tag_p_and_non_container_lines_pass() -> None:
    data = cri("stdout", "P", "cut short") + b"not a cri line\n" + cri("stdout", "F", "ok")
    tail = Tail(0, max_line_bytes=1 << 20, container="cri")
    events = run(tail, data, 7)
    assert messages(events[:1]) == [("stdout", "P", "cut short")]
    assert events[1].text == "not a cri line"
    assert messages(events[2:]) == [("stdout", "F", "ok")]


def test_flush_due_emits_a_line_whose_fragments_stopped() -> None:
    tail = Tail(0, max_line_bytes=1 << 20, container="cri")
    assert tail.feed(cri("stdout", "P", "waiting"), 0) == []
    due = tail.next_due_ns(1 << 62)
    assert due is not None
    assert tail.flush_due(due - 1, 1 << 62) == []
    assert messages(tail.flush_due(due, 1 << 62)) == [("stdout", "P", "waiting")]


def test_docker_fragments_and_a_character_cut_in_two() -> None:
    snow = "\u2603"  # 3 bytes in UTF-8
    raw = ("x" * 10 + snow + "y" * 5).encode()
    cut = 11  # inside the snowman
    # docker writes JSON strings, so a cut character would be escaped garbage; CRI writes raw
    # bytes, which is where the splitter's surrogate escapes matter:
    cri_bytes = (
        f"{T0} stdout P ".encode()
        + raw[:cut]
        + b"\n"
        + f"{T0} stdout F ".encode()
        + raw[cut:]
        + b"\n"
    )
    tail = Tail(0, max_line_bytes=1 << 20, container="cri")
    assert messages(run(tail, cri_bytes, 5)) == [("stdout", "F", raw.decode())]
    frags = docker("stdout", "part one, ", False) + docker("stdout", "part two", True)
    tail = Tail(0, max_line_bytes=1 << 20, container="docker")
    events = run(tail, frags, 9)
    assert messages(events, "docker") == [("stdout", "F", "part one, part two")]
    assert json.loads(events[0].text)["time"] == T0


@st.composite
def container_file(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str]]]:
    """Lines of two streams cut into fragments, interleaved at random; the whole lines."""
    lines = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["stdout", "stderr"]),
                st.lists(st.text("abcdé☃ ", min_size=1, max_size=6), min_size=1, max_size=4),
            ),
            min_size=1,
            max_size=12,
        )
    )
    queues = {"stdout": [], "stderr": []}  # type: dict[str, list[bytes]]
    whole = {"stdout": [], "stderr": []}  # type: dict[str, list[str]]
    for stream, parts in lines:
        for i, part in enumerate(parts):
            queues[stream].append(cri(stream, "F" if i == len(parts) - 1 else "P", part))
        whole[stream].append("".join(parts))
    out = b""
    rng = random.Random(draw(st.integers(0, 1 << 30)))
    while queues["stdout"] or queues["stderr"]:
        stream = rng.choice([s for s in queues if queues[s]])
        out += queues[stream].pop(0)
    expected = [(s, t) for s in ("stdout", "stderr") for t in whole[s]]
    return out, expected


@settings(max_examples=150, deadline=None)
@given(container_file(), st.integers(1, 64))
def test_any_interleaving_and_chunking_gives_every_line_once_with_ranges_that_never_go_back(
    case: tuple[bytes, list[tuple[str, str]]], chunk: int
) -> None:
    data, expected = case
    events = run(Tail(0, max_line_bytes=1 << 20, container="cri"), data, chunk)
    got = messages(events)
    assert all(tag == "F" for _, tag, _ in got)
    by_stream = {s: [m for st_, _, m in got if st_ == s] for s in ("stdout", "stderr")}
    assert [(s, m) for s in ("stdout", "stderr") for m in by_stream[s]] == expected
    offsets = [e.offset for e in events]
    ends = [e.end for e in events]
    assert offsets == sorted(offsets) and ends == sorted(ends) and ends[-1] == len(data)
    # every end is either the next event's end (same group) or at most its start
    for a, b in itertools.pairwise(events):
        assert a.end == b.end or a.end <= b.offset
    assert events == run(Tail(0, max_line_bytes=1 << 20, container="cri"), data, len(data))


def test_the_batcher_never_cuts_inside_a_group() -> None:
    b = Batcher(batch_bytes=10, linger_s=1.0)
    track = FileTrack("f", 0)
    recs = [Record(ts=1, line=str(i)) for i in range(4)]
    # events 1 and 2 form a group (same end): the 10-byte limit falls after event 1
    cuts = b.add_many("t", track, recs, [6, 20, 20, 26], [6, 6, 8, 6], 0.0)
    assert [len(c.records) for c in cuts] == [3]
    assert cuts[0].spans[0].end == 20


@pytest.mark.slow
def test_kubernetes_lines_cut_in_fragments_are_stored_once_and_whole(tmp_path: Path) -> None:
    """A CRI log gets 120 lines of 40 KiB (three fragments each, the runtime's 16 KiB cut)
    with short stderr lines interleaved between the fragments, each fragment written on its
    own; the shipper reads 4 KiB at a time and is SIGKILLed twice mid-stream. Every line is
    stored once, joined, with its stream."""
    s = scene(
        tmp_path, [{"paths": ["*.log"], "topic": "k8s", "parser": "cri"}], read_buffer_bytes=4096
    )
    state, col, sh = s.state, s.col, s.shipper.start()
    log = s.logs / "app_default_web-1.log"
    total, size, cut = 120, 40 * 1024, 16 * 1024

    def body(k: int) -> str:
        head = f"n={k:06d} "
        return head + "".join(chr(97 + (k + i) % 26) for i in range(size - len(head)))

    def writer() -> None:
        with log.open("ab") as f:
            for k in range(total):
                text = body(k)
                pieces = [text[i : i + cut] for i in range(0, len(text), cut)]
                for i, piece in enumerate(pieces):
                    f.write(cri("stdout", "F" if i == len(pieces) - 1 else "P", piece))
                    if i == 0:
                        f.write(cri("stderr", "F", f"e={k:06d} between the fragments"))
                    f.flush()
                time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(2):
            time.sleep(0.6)
            sh.kill()
            sh.start()
        t.join(120)
        wait_caught_up(state, min_files=1)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    records = col.records("k8s")
    out = [r for r in records if r.fields.get("stream") == "stdout"]
    err = [r for r in records if r.fields.get("stream") == "stderr"]
    assert sorted(r.fields["message"] for r in out) == sorted(body(k) for k in range(total))
    assert all(r.fields["tag"] == "F" for r in out)
    assert sorted(r.fields["message"] for r in err) == [
        f"e={k:06d} between the fragments" for k in range(total)
    ]
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets)
