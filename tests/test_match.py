"""Line matching over a blob must equal matching each line on its own."""

from __future__ import annotations

import re
from itertools import accumulate

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from wharf.errors import InvalidArgument
from wharf.match import LineMatcher, required_literal


def _blob(lines: list[str]) -> tuple[bytes, list[int]]:
    data = [line.encode("utf-8", "surrogatepass") for line in lines]
    return b"\n".join(data), list(accumulate(len(d) + 1 for d in data))


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
    blob, stops = _blob(ls)
    flags = re.IGNORECASE if icase else 0
    expected = [i for i, line in enumerate(ls) if bool(re.search(pattern, line, flags)) != invert]
    m = LineMatcher(pattern, ignore_case=icase, invert=invert)
    assert m.matching(blob, stops) == expected
    assert m.count(blob, stops) == len(expected)


@settings(max_examples=300)
@given(st.text(alphabet="abéA \n", min_size=0, max_size=4), lines, st.booleans())
def test_literal_over_blob_equals_per_line(needle: str, ls: list[str], icase: bool) -> None:
    blob, stops = _blob(ls)
    if icase:
        expected = [i for i, line in enumerate(ls) if needle.lower() in line.lower()]
    else:
        expected = [i for i, line in enumerate(ls) if needle in line]
    assert LineMatcher(needle, fixed=True, ignore_case=icase).matching(blob, stops) == expected


def test_a_match_never_joins_two_lines() -> None:
    blob, stops = _blob(["abc", "def", "x y"])
    assert LineMatcher(r"c\sd").matching(blob, stops) == []
    assert LineMatcher(r"[^q]*def").matching(blob, stops) == [1]
    assert LineMatcher("^def$").matching(blob, stops) == [1]
    assert LineMatcher("c\nd", fixed=True).matching(blob, stops) == []


def test_records_with_embedded_newlines_anchor_at_each_inner_line() -> None:
    """A multiline event (a stack trace) is one record; ``^`` still anchors inside it."""
    blob, stops = _blob(["Exception: boom\n  at Foo.bar\nCaused by: io", "next"])
    assert LineMatcher("^Caused by").matching(blob, stops) == [0]
    assert LineMatcher("^next$").matching(blob, stops) == [1]


def test_unicode_case_folding_and_classes() -> None:
    blob, stops = _blob(["Grüße aus KÖLN", "plain"])
    assert LineMatcher("köln", ignore_case=True).matching(blob, stops) == [0]
    assert LineMatcher("köln", fixed=True, ignore_case=True).matching(blob, stops) == [0]
    assert LineMatcher(r"Gr.ße").matching(blob, stops) == [0]


def test_bad_patterns_are_clear_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid regular expression"):
        LineMatcher("a(b")
    with pytest.raises(InvalidArgument, match="exceeds"):
        LineMatcher("a" * 70_000)


def test_pathological_pattern_runs_in_linear_time() -> None:
    """``(a+)+$`` takes exponential time in backtracking engines; RE2 answers at once."""
    blob, stops = _blob(["a" * 5000 + "!"])
    assert LineMatcher("(a+)+$").matching(blob, stops) == []


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
