"""Line matching over a blob must equal matching each line on its own."""

from __future__ import annotations

import re
from itertools import accumulate

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.filters.match import LineMatcher, required_literal
from wharf.errors import InvalidArgument


class _Lines:
    """The matcher's view of a batch, built directly from strings."""

    def __init__(self, lines: list[str]) -> None:
        data = [line.encode("utf-8", "surrogatepass") for line in lines]
        self.blob = b"\n".join(data)
        self.stops = list(accumulate(len(d) + 1 for d in data))
        self.flat = not any("\n" in line for line in lines)

    def __len__(self) -> int:
        return len(self.stops)

    def lines_blob(self) -> bytes:
        return self.blob

    def line_stops(self) -> list[int]:
        return self.stops


# Regexes built from constructs RE2 and Python's re read the same way.
_atom = st.sampled_from(["a", "b", "é", " ", ".", "[ab]", "[^a]", r"\s", r"\S", r"\d", "x", "ab"])
_piece = st.tuples(_atom, st.sampled_from(["", "*", "+", "?", "{2}"])).map("".join)
_seq = st.lists(_piece, min_size=1, max_size=4).map("".join)
_anchored = st.tuples(st.sampled_from(["", "^"]), _seq, st.sampled_from(["", "$"])).map("".join)
regexes = st.lists(_anchored, min_size=1, max_size=2).map("|".join)
lines = st.lists(st.text(alphabet="abé x1\t\r", max_size=12), min_size=1, max_size=12)


@settings(max_examples=400)
@given(regexes, lines, st.booleans(), st.booleans())
def test_regex_over_blob_equals_per_line(
    pattern: str, ls: list[str], icase: bool, invert: bool
) -> None:
    lines = _Lines(ls)
    flags = re.IGNORECASE if icase else 0
    expected = [i for i, line in enumerate(ls) if bool(re.search(pattern, line, flags)) != invert]
    m = LineMatcher(pattern, ignore_case=icase, invert=invert)
    assert m.matching(lines) == expected
    assert m.count(lines) == len(expected)


@settings(max_examples=300)
@given(st.text(alphabet="abéA \n", min_size=0, max_size=4), lines, st.booleans())
def test_literal_over_blob_equals_per_line(needle: str, ls: list[str], icase: bool) -> None:
    lines = _Lines(ls)
    if icase:
        expected = [i for i, line in enumerate(ls) if needle.lower() in line.lower()]
    else:
        expected = [i for i, line in enumerate(ls) if needle in line]
    assert LineMatcher(needle, fixed=True, ignore_case=icase).matching(lines) == expected


def test_a_match_never_joins_two_lines() -> None:
    lines = _Lines(["abc", "def", "x y"])
    assert LineMatcher(r"c\sd").matching(lines) == []
    assert LineMatcher(r"[^q]*def").matching(lines) == [1]
    assert LineMatcher("^def$").matching(lines) == [1]
    assert LineMatcher("c\nd", fixed=True).matching(lines) == []


def test_records_with_embedded_newlines_anchor_at_each_inner_line() -> None:
    """A multiline event (a stack trace) is one record; ``^`` still anchors inside it."""
    lines = _Lines(["Exception: boom\n  at Foo.bar\nCaused by: io", "next"])
    assert LineMatcher("^Caused by").matching(lines) == [0]
    assert LineMatcher("^next$").matching(lines) == [1]


def test_unicode_case_folding_and_classes() -> None:
    lines = _Lines(["Grüße aus KÖLN", "plain"])
    assert LineMatcher("köln", ignore_case=True).matching(lines) == [0]
    assert LineMatcher("köln", fixed=True, ignore_case=True).matching(lines) == [0]
    assert LineMatcher(r"Gr.ße").matching(lines) == [0]


def test_bad_patterns_are_clear_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid regular expression"):
        LineMatcher("a(b")
    with pytest.raises(InvalidArgument, match="exceeds"):
        LineMatcher("a" * 70_000)


def test_pathological_pattern_runs_in_linear_time() -> None:
    """``(a+)+$`` takes exponential time in backtracking engines; RE2 answers at once."""
    lines = _Lines(["a" * 5000 + "!"])
    assert LineMatcher("(a+)+$").matching(lines) == []


@settings(max_examples=500)
@given(regexes, st.text(alphabet="abé x1", max_size=20))
def test_required_literal_is_in_every_match(pattern: str, text: str) -> None:
    lit = required_literal(pattern)
    if lit is not None and re2.search(pattern.encode(), text.encode()):
        assert lit in text.encode()


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("Mozilla.*Firefox", b"Mozilla"),
        (r"GET /\S+\.png", b"GET /"),
        ("a|b", None),
        ("(?i)abc", None),
        (r"x\.y+z", b"x."),
        ("[abc]def(gh)ij", b"def"),
        (r"\d+ ms", b" ms"),
    ],
)
def test_required_literal_examples(pattern: str, literal: bytes | None) -> None:
    assert required_literal(pattern) == literal


@settings(max_examples=300)
@given(regexes, st.lists(st.text(alphabet="ab x\n", max_size=10), min_size=1, max_size=10))
def test_records_holding_newlines_match_like_each_record_alone(pattern: str, ls: list[str]) -> None:
    """With multiline records present, boundaries come from the stops, not from newlines."""
    lines = _Lines(ls)
    expected = [i for i, rec in enumerate(ls) if re.search(pattern, rec, re.MULTILINE)]
    assert LineMatcher(pattern).matching(lines) == expected
