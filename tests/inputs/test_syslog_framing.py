"""The syslog input's pure core: RFC 6587 framing (``collector.inputs.syslog_framing``).

Peer vectors: ``../shared/data/vectors/syslog_octet_counting.jsonl``, from influxdata/go-syslog
@ 875f5bc5 ``octetcounting/parser_test.go`` (MIT), used as they are. Hypothesis checks that
any chunking of a stream gives the same messages as the whole stream, in both framings.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.inputs.syslog_framing import (
    Dropped,
    Framer,
    Framing,
    FramingError,
    split_datagram,
)
from parsers.syslog import SyslogParser
from tests.parsers._vectors import load_cases

# --- go-syslog's octet-counting vectors ----------------------------------------------------

# Per case: (frames before the end or the error, whether the framing breaks, dropped frames).
# Read from each case's descr and results; the three that differ are by design:
# - #0: an empty connection is no error to us (nothing was sent, nothing is lost);
# - #6, #7: a stream whose first bytes are not "MSGLEN SP" is read as non-transparent framing
#   (RFC 6587 3.4: the framing is told by the first character), so it is one message.
OCTET_EXPECTED: dict[str, tuple[int, bool, int]] = {
    "go-syslog/octetcounting#0": (0, False, 0),  # deviation: go-syslog expects a MSGLEN
    "go-syslog/octetcounting#1": (2, False, 0),
    "go-syslog/octetcounting#2": (1, True, 0),
    "go-syslog/octetcounting#3": (1, True, 0),
    "go-syslog/octetcounting#4": (1, False, 0),
    "go-syslog/octetcounting#5": (0, True, 0),
    "go-syslog/octetcounting#6": (1, False, 0),  # deviation: "16<1>1" is one LF-less message
    "go-syslog/octetcounting#7": (1, False, 0),  # deviation: "1" is one LF-less message
    "go-syslog/octetcounting#8": (3, False, 0),
    "go-syslog/octetcounting#9": (3, False, 0),
    "go-syslog/octetcounting#10": (1, False, 0),
    "go-syslog/octetcounting#11": (1, False, 0),
    "go-syslog/octetcounting#12": (2, False, 0),
    "go-syslog/octetcounting#13": (2, False, 0),
    "go-syslog/octetcounting#14": (3, False, 0),
    "go-syslog/octetcounting#15": (0, False, 1),  # MSGLEN past the limit: skipped, counted
    "go-syslog/octetcounting#16": (1, True, 0),
}
OCTET_CASES = load_cases("syslog_octet_counting")


def run_stream(framer: Framer, chunks: list[bytes]) -> tuple[list[bytes | Dropped], bool]:
    """Every event of ``chunks`` then the end; whether the framing broke."""
    out: list[bytes | Dropped] = []
    try:
        for chunk in chunks:
            out += framer.feed(chunk)
        out += framer.end()
    except FramingError:
        return out, True
    return out, False


def test_every_vector_has_an_expectation() -> None:
    assert sorted(c["id"] for c in OCTET_CASES) == sorted(OCTET_EXPECTED)


@pytest.mark.parametrize("case", OCTET_CASES, ids=lambda c: c["id"])
def test_octet_counting_vector(case: dict[str, Any]) -> None:
    """Frame boundaries as go-syslog finds them; each frame go-syslog parses, our strict
    RFC 5424 parser parses to the same header, each it refuses ours refuses."""
    data = case["input"].encode()
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        events, broke = run_stream(Framer(case["max_message_length"]), chunks)
        frames = [e for e in events if isinstance(e, bytes)]
        dropped = [e for e in events if isinstance(e, Dropped)]
        assert (len(frames), broke, len(dropped)) == OCTET_EXPECTED[case["id"]]
        assert all(d.size is not None and d.size > case["max_message_length"] for d in dropped)
    if case["id"] in ("go-syslog/octetcounting#6", "go-syslog/octetcounting#7"):
        assert frames == [data]
        return
    parser = SyslogParser(mode="rfc5424")
    for frame, result in zip(frames, case["results"], strict=False):
        got = parser.parse(frame.decode())
        if result["error"] is not None:
            assert got.error is not None
            continue
        want = result["message"]
        for key in ("priority", "version", "hostname", "appname", "procid", "msgid", "message"):
            assert got.fields.get(key) == want.get(key), key


# --- what real senders send ----------------------------------------------------------------


def test_rsyslog_counts_its_trailing_newline() -> None:
    """rsyslog's omfwd with TCP_Framing="octet-counted" counts the template's "\\n"."""
    msg = b"<13>1 2024-06-15T12:00:00.000001+00:00 h app - - - hello\n"
    framer = Framer(1024)
    assert framer.feed(b"%d %s%d %s" % (len(msg), msg, len(msg), msg)) == [msg[:-1]] * 2
    assert framer.framing is Framing.OCTET_COUNTING


def test_newlines_between_counted_frames_are_skipped() -> None:
    framer = Framer(1024)
    assert framer.feed(b"5 <1>ab\n\r\n5 <2>cd\0") == [b"<1>ab", b"<2>cd"]
    assert framer.end() == []


@pytest.mark.parametrize(
    ("stream", "trailer", "messages"),
    [
        (b"<13>a\n<13>b\n", b"\n", [b"<13>a", b"<13>b"]),
        (b"<13>a\r\n<13>b\r\n", b"\n", [b"<13>a", b"<13>b"]),
        (b"<13>a\0<13>line one\nline two\0", b"\0", [b"<13>a", b"<13>line one\nline two"]),
        (b"<13>a\nb\0<13>c\0", b"\n", [b"<13>a", b"b\0<13>c\0"]),  # the first trailer decides
        (b"<13>a\n\n\n<13>b", b"\n", [b"<13>a", b"<13>b"]),  # the last without its LF
        (b"2024-06-15 no pri\n", b"\n", [b"2024-06-15 no pri"]),  # digits, but no MSGLEN
    ],
)
def test_non_transparent_framing(stream: bytes, trailer: bytes, messages: list[bytes]) -> None:
    framer = Framer(1024)
    got = framer.feed(stream) + framer.end()
    assert got == messages
    assert framer.framing is Framing.NON_TRANSPARENT
    assert framer.trailer == trailer


def test_messages_before_a_framing_error_are_kept() -> None:
    framer = Framer(1024)
    assert framer.feed(b"4 <1>a4 <2>bx") == [b"<1>a", b"<2>b"]
    assert framer.error is not None and "MSGLEN" in framer.error
    with pytest.raises(FramingError, match="MSGLEN"):
        framer.end()
    with pytest.raises(FramingError):  # and it stays broken
        framer.feed(b"4 <3>c")


@pytest.mark.parametrize(
    ("stream", "what"),
    [
        (b"5 <1>ab 012 x", "MSGLEN"),  # a leading zero
        (b"5 <1>ab12345678901 x", "longer than 10 digits"),
        (b"5 <1>ab 5 x", "got a space"),
        (b"5 <1>ab12", "inside a MSGLEN"),
        (b"5 <1>ab9 <1>", "inside a frame: 3 of its 9 bytes"),
    ],
)
def test_octet_counting_errors_say_what(stream: bytes, what: str) -> None:
    events, broke = run_stream(Framer(1024), [stream])
    assert events == [b"<1>ab"]
    assert broke
    framer = Framer(1024)
    framer.feed(stream[:7])
    with pytest.raises(FramingError, match=what):
        framer.feed(stream[7:])
        framer.end()


# --- bounds --------------------------------------------------------------------------------


@pytest.mark.parametrize("counted", [True, False])
def test_a_100_mb_message_is_never_held(counted: bool) -> None:
    """A 100 MB message among good ones: skipped as its bytes arrive (dropped once), never
    held whole; the messages around it come through."""
    size = 100 << 20
    limit = 64 << 10
    good = b"<13>1 - h app - - - fine"
    head = b"%d %s%d " % (len(good), good, size) if counted else good + b"\n"
    tail = b"%d %s" % (len(good), good) if counted else b"\n" + good + b"\n"
    framer = Framer(limit)
    events = framer.feed(head)
    chunk = b"x" * (1 << 20)
    most = 0
    for _ in range(size // len(chunk)):
        events += framer.feed(chunk)
        most = max(most, framer.pending)
    events += framer.feed(tail) + framer.end()
    assert events == [good, Dropped(size if counted else None), good]
    assert most <= limit + 1


def test_limit_is_inclusive() -> None:
    framer = Framer(8)
    assert framer.feed(b"<1>12345\n<1>123456\n") == [b"<1>12345", Dropped(None)]
    framer = Framer(8)
    assert framer.feed(b"8 <1>123459 <1>123456") == [b"<1>12345", Dropped(9)]


# --- any chunking, the same messages -------------------------------------------------------

_BODY = st.binary(min_size=0, max_size=40)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes | Dropped], int]:
    """A stream of messages in one framing, and the events it must give."""
    limit = draw(st.integers(min_value=4, max_value=48))
    counted = draw(st.booleans())
    trailer = draw(st.sampled_from([b"\n", b"\r\n", b"\0"]))
    bodies = draw(st.lists(_BODY, max_size=8))
    stream, want = bytearray(), []
    for i, body in enumerate(bodies):
        if counted:
            msg = b"<1>" + body
            newline = draw(st.sampled_from([b"", b"\n"]))  # rsyslog counts its newline
            frame = msg + newline
            stream += b"%d %s" % (len(frame), frame)
            stream += draw(st.sampled_from([b"", b"\n"]))  # and some add one outside
            if frame.endswith(b"\n"):  # one trailing LF (CRLF) is the template's, removed
                frame_kept = frame[:-2] if frame.endswith(b"\r\n") else frame[:-1]
            else:
                frame_kept = frame
            want.append(Dropped(len(frame)) if len(frame) > limit else frame_kept)
        else:
            cut, other = (b"\0", b"\n") if trailer == b"\0" else (b"\n", b"\0")
            text = body.replace(cut, b"")
            if i == 0:  # the connection's first trailer decides its framing
                text = text.replace(other, b"")
            msg = b"<1>" + text.rstrip(b"\r")
            stream += msg + trailer
            want.append(Dropped(None) if len(msg) > limit else msg)
    return bytes(stream), [w for w in want if w], limit


@settings(max_examples=400, deadline=None)
@given(streams(), st.data())
def test_any_chunking_gives_the_same_messages(
    case: tuple[bytes, list[bytes | Dropped], int], data: st.DataObject
) -> None:
    stream, want, limit = case
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole, broke_whole = run_stream(Framer(limit), [stream])
    pieces, broke_pieces = run_stream(Framer(limit), chunks)
    assert not broke_whole and not broke_pieces
    assert whole == pieces == want


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_garbage_raises_only_the_framing_error(data: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes give messages, drops or ``FramingError``; chunked or not, the same."""
    bounds = sorted(c for c in cuts if c <= len(data))
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    whole = run_stream(Framer(64), [data])
    assert run_stream(Framer(64), chunks) == whole
    assert all(len(e) <= 65 for e in whole[0] if isinstance(e, bytes))


# --- datagrams -----------------------------------------------------------------------------


def test_datagrams() -> None:
    assert split_datagram(b"<13>one") == [b"<13>one"]
    assert split_datagram(b"<13>one\n<14>two\r\n<15>three\n\0") == [
        b"<13>one",
        b"<14>two",
        b"<15>three",
    ]
    trace = b"<11>app: Traceback\n  File x\nValueError: no\n"
    assert split_datagram(trace) == [trace.rstrip(b"\n")]
    assert split_datagram(b"\n\0") == []
