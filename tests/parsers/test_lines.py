"""The line splitter: terminators, invalid UTF-8, over-long lines, held last lines, and the
same output for every way of cutting the bytes into chunks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parsers.lines import DEFAULT_MAX_LINE_BYTES, Line, LineSplitter


def _all(data: bytes, **kwargs: object) -> list[Line]:
    splitter = LineSplitter(**kwargs)  # type: ignore[arg-type]
    return splitter.feed(data) + splitter.flush()


def test_terminators() -> None:
    splitter = LineSplitter(offset=100)
    assert splitter.feed(b"a\nb\r\n\r\nc\rd\n") == [
        Line(100, "a", 2),
        Line(102, "b", 3),
        Line(105, "", 2),
        Line(107, "c\rd", 4),
    ]
    assert splitter.next_offset == 111 and splitter.pending_bytes == 0


def test_partial_last_line_is_held_then_completed_or_flushed() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == [Line(0, "one", 4)]
    assert (splitter.pending_bytes, splitter.pending_offset) == (2, 4)
    assert splitter.feed(b"o") == []
    assert splitter.feed(b"\r") == []
    assert splitter.feed(b"\nthree") == [Line(4, "two", 5)]
    # End of a rotated file: the last line has no terminator.
    assert splitter.flush() == [Line(9, "three", 5)]
    assert splitter.flush() == [] and splitter.pending_bytes == 0
    # A '\r' left at a forced flush is taken as the first half of a '\r\n'.
    splitter.feed(b"x\r")
    assert splitter.flush() == [Line(14, "x", 2)]
    assert splitter.lines == 4


def test_invalid_utf8_replaced_and_counted() -> None:
    splitter = LineSplitter()
    lines = splitter.feed(b"ok \xc3\xa9\nbad \xff\xfe\ncut \xe2\x82\n")
    assert [line.text for line in lines] == ["ok é", "bad \ufffd\ufffd", "cut \ufffd"]
    assert splitter.invalid_utf8_lines == 2
    escaped = LineSplitter(errors="surrogateescape").feed(b"bad \xff\n")
    assert escaped[0].text.encode("utf-8", "surrogateescape") == b"bad \xff"


def test_long_line_truncated_rest_dropped_until_newline() -> None:
    splitter = LineSplitter(max_line_bytes=4)
    out = splitter.feed(b"abcdefgh")
    out += splitter.feed(b"ijkl")
    assert out == [] and splitter.pending_bytes == 12
    out = splitter.feed(b"mn\nok\n")
    assert out == [Line(0, "abcd", 15), Line(15, "ok", 3)]
    assert splitter.truncated_lines == 1
    # Exactly the limit, with or without '\r\n': not truncated.
    assert _all(b"abcd\r\nabcd\n", max_line_bytes=4) == [Line(0, "abcd", 6), Line(6, "abcd", 5)]
    # The cut never splits a character: 'é' (2 bytes) would straddle the limit.
    assert _all("abcé\n".encode(), max_line_bytes=4) == [Line(0, "abc", 6)]
    # Truncated at a forced flush too.
    assert _all(b"abcdef", max_line_bytes=4) == [Line(0, "abcd", 6)]


def test_memory_stays_bounded() -> None:
    splitter = LineSplitter(max_line_bytes=1024)
    for _ in range(100):
        assert splitter.feed(b"x" * 65536) == []
    assert len(splitter._held) <= 1025
    (line,) = splitter.feed(b"\n")
    assert len(line.text) == 1024 and line.size == 100 * 65536 + 1
    assert DEFAULT_MAX_LINE_BYTES == 1 << 20


def test_offsets_must_follow() -> None:
    splitter = LineSplitter(offset=10)
    splitter.feed(b"ab", 10)
    with pytest.raises(ValueError, match="chunk at offset 11 does not follow"):
        splitter.feed(b"c", 11)
    with pytest.raises(ValueError, match="max_line_bytes"):
        LineSplitter(max_line_bytes=0)
    with pytest.raises(ValueError, match="errors"):
        LineSplitter(errors="ignore")  # type: ignore[arg-type]


_BYTES = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b"\xc3\xa9", b"\xc3", b"\xff", b"xyz"]),
    max_size=80,
).map(b"".join)


@settings(max_examples=400)
@given(
    data=_BYTES,
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    max_line=st.integers(min_value=1, max_value=12),
    errors=st.sampled_from(["replace", "surrogateescape"]),
    start=st.integers(min_value=0, max_value=10**12),
)
@example(data=b"abcd\r\n", cuts=[5], max_line=4, errors="replace", start=0)
@example(data=b"ab\xc3\xa9\n", cuts=[3], max_line=3, errors="replace", start=0)
def test_any_chunking_gives_the_same_lines(
    data: bytes, cuts: list[int], max_line: int, errors: str, start: int
) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    whole = LineSplitter(start, max_line_bytes=max_line, errors=errors)  # type: ignore[arg-type]
    chunked = LineSplitter(start, max_line_bytes=max_line, errors=errors)  # type: ignore[arg-type]
    expected = whole.feed(data, start) + whole.flush()
    got: list[Line] = []
    for i, j in itertools.pairwise(points):
        got += chunked.feed(data[i:j], start + i)
        # Never more held than the line read so far.
        assert chunked.pending_offset + chunked.pending_bytes == start + j
    got += chunked.flush()
    assert got == expected
    assert (whole.invalid_utf8_lines, whole.truncated_lines) == (
        chunked.invalid_utf8_lines,
        chunked.truncated_lines,
    )
    # The lines cover the bytes exactly, in order, and hold no terminator.
    offset = start
    for line in got:
        assert line.offset == offset
        raw = data[offset - start : offset - start + line.size]
        offset += line.size
        assert "\n" not in line.text
        if errors == "surrogateescape":
            text = line.text.encode("utf-8", "surrogateescape")
            body = raw.removesuffix(b"\n").removesuffix(b"\r")
            # The text is the line's bytes, or (truncated) a prefix of them within the limit,
            # cut at most 3 bytes early to keep a character whole.
            assert body.startswith(text)
            assert text == body or max_line - 3 <= len(text) <= max_line
    assert offset == start + len(data)
