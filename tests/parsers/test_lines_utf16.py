"""UTF-16 files: lines out of ``Utf16LineSplitter`` (and a ``Tail`` that sniffs the byte order
mark), with byte-exact offsets whatever the chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.lines import Utf16LineSplitter, sniff_encoding
from shipper.tail import Tail

TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=12
)


def feed_all(sp: Utf16LineSplitter, data: bytes, chunk: int) -> list[tuple[int, str, int]]:
    out = []
    for i in range(0, len(data), chunk):
        out += sp.feed(data[i : i + chunk])
    out += sp.flush()
    return [(ln.offset, ln.text, ln.size) for ln in out]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(TEXT, st.sampled_from(["\n", "\r\n"])), max_size=8),
    TEXT,
    st.booleans(),
    st.integers(1, 9),
)
def test_lines_and_byte_offsets_for_any_text_and_chunking(
    lines: list[tuple[str, str]], last: str, big: bool, chunk: int
) -> None:
    codec = "utf-16-be" if big else "utf-16-le"
    bom = "\ufeff".encode(codec)
    data = bom + "".join(t + end for t, end in lines).encode(codec) + last.encode(codec)
    expected, pos = [], 0
    for i, (text, end) in enumerate(lines):
        size = len((text + end).encode(codec)) + (len(bom) if i == 0 else 0)
        expected.append((pos, text, size))
        pos += size
    if last or not lines:
        size = len(last.encode(codec)) + (len(bom) if not lines else 0)
        if size:
            expected.append((pos, last, size))
    sp = Utf16LineSplitter(big_endian=big)
    assert feed_all(sp, data, chunk) == expected
    assert sp.invalid_utf8_lines == 0 and sp.next_offset == len(data)


def test_lone_surrogates_half_code_units_and_long_lines() -> None:
    bad = b"\x00\xd8" + "x\n".encode("utf-16-le")  # a high surrogate with no low one
    sp = Utf16LineSplitter()
    assert [ln.text for ln in sp.feed(bad)] == ["\ufffdx"] and sp.invalid_utf8_lines == 1
    sp = Utf16LineSplitter()
    assert sp.feed("ab".encode("utf-16-le") + b"c") == [] and sp.pending_bytes == 5
    assert [(ln.text, ln.size) for ln in sp.flush()] == [("ab\ufffd", 5)]
    sp = Utf16LineSplitter(max_line_bytes=8)
    long = ("y" * 50 + "\nok\n").encode("utf-16-le")
    out = [(ln.offset, ln.text, ln.size) for ln in sp.feed(long)]
    assert out == [(0, "yyyy", 102), (102, "ok", 6)] and sp.truncated_lines == 1


def test_a_tail_sniffs_the_byte_order_mark_and_resumes_past_it() -> None:
    data = "first\r\nsecond\n".encode("utf-16")
    assert sniff_encoding(data) == "utf-16le" and sniff_encoding(b"plain") == "utf-8"
    tail = Tail(0, max_line_bytes=1 << 20, encoding="auto")
    assert [(e.offset, e.end, e.text) for e in tail.feed(data, 0)] == [
        (0, 16, "first"),
        (16, 30, "second"),
    ]
    resumed = Tail(16, max_line_bytes=1 << 20, encoding="utf-16le")
    assert [e.text for e in resumed.feed(data[16:], 0)] == ["second"]
    plain = Tail(0, max_line_bytes=1 << 20, encoding="auto")
    assert [e.text for e in plain.feed("caf\u00e9\n".encode(), 0)] == ["caf\u00e9"]
