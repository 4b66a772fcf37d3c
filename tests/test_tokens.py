"""Token filters never rule out a line that a grep matches (``collector.filters.tokens``)."""

from __future__ import annotations

import re
import secrets

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from collector.filters import tokens
from collector.filters.match import LineMatcher
from tests.test_match import _Lines

# Token characters of every kind, separators, the two non-ASCII characters RE2 folds onto ASCII
# letters (LONG S, KELVIN SIGN), other non-ASCII letters with case, a newline (multiline records).
ALPHABET = "aAkKsS_09 =-./:\u017f\u212aäÄß\u03a3\u03c3\u03c2\t\n"
lines = st.lists(st.text(alphabet=ALPHABET, max_size=24), min_size=1, max_size=6)

_atom = st.sampled_from(["a", "k", "s", "K", "S", "_", "0", " ", "=", ".", r"\.", "ä", "[ab]"])
_piece = st.tuples(_atom, st.sampled_from(["", "", "", "*", "+", "?"])).map("".join)
regexes = st.lists(_piece, min_size=1, max_size=8).map("".join)


def _admitted(ls: list[str], pattern: str, *, fixed: bool, icase: bool) -> None:
    """Every line the grep matches keeps a filter (built over that line alone) that admits
    the grep's required tokens."""
    needed = tokens.required_tokens(pattern, fixed=fixed, ignore_case=icase, invert=False)
    matcher = LineMatcher(pattern, fixed=fixed, ignore_case=icase)
    for i in matcher.matching(_Lines(ls)):
        found = tokens.line_tokens(ls[i].encode())
        bloom = tokens.build(found, len(found))
        assert tokens.may_contain(bloom, needed), (ls[i], pattern, needed)


@settings(max_examples=1500)
@given(lines, st.data(), st.booleans())
def test_a_literal_from_a_line_is_never_ruled_out(
    ls: list[str], data: st.DataObject, icase: bool
) -> None:
    line = data.draw(st.sampled_from(ls))
    start = data.draw(st.integers(0, len(line)))
    end = data.draw(st.integers(start, len(line)))
    needle = line[start:end]
    if icase:  # the needle as a user might type it: any case
        flips = data.draw(st.lists(st.booleans(), min_size=len(needle), max_size=len(needle)))
        needle = "".join(c.swapcase() if f else c for c, f in zip(needle, flips, strict=True))
    assume(needle)
    _admitted(ls, needle, fixed=True, icase=icase)


@settings(max_examples=1500)
@given(lines, st.data())
def test_a_line_as_a_case_blind_regex_is_never_ruled_out(
    ls: list[str], data: st.DataObject
) -> None:
    """A slice of a line, escaped, its case flipped, as an ``-i`` regex: RE2's Unicode case
    folding (k matches KELVIN SIGN, s LONG S) where ``-F -i`` only folds ASCII."""
    line = data.draw(st.sampled_from(ls))
    start = data.draw(st.integers(0, len(line)))
    needle = line[start : data.draw(st.integers(start, len(line)))]
    flips = data.draw(st.lists(st.booleans(), min_size=len(needle), max_size=len(needle)))
    needle = "".join(c.swapcase() if f else c for c, f in zip(needle, flips, strict=True))
    assume(needle.strip())
    _admitted(ls, re.escape(needle), fixed=False, icase=True)


@settings(max_examples=1500)
@given(lines, regexes, st.booleans())
def test_a_regex_match_is_never_ruled_out(ls: list[str], pattern: str, icase: bool) -> None:
    _admitted(ls, pattern, fixed=False, icase=icase)


@pytest.mark.parametrize(
    ("pattern", "fixed", "icase", "needed"),
    [
        ("rid=9f3c ", True, False, [b"9f3c"]),  # "rid" is an edge token: maybe part of "xrid"
        ("9f3c", True, False, []),  # one edge token: may be inside a longer one
        (" GET /index.html HTTP", True, False, [b"get", b"index", b"html"]),
        (" GÉT ", True, True, []),  # non-ASCII under -i: its case variants differ in bytes
        (" GÉT ", True, False, ["gÉt".encode()]),
        (r"user=\w+ id=42 ", False, False, [b"id", b"42"]),  # " id=42 " is required
        ("a|b c d", False, False, []),  # an alternation requires nothing
        (" x ", False, False, [b"x"]),
    ],
)
def test_required_tokens_examples(
    pattern: str, fixed: bool, icase: bool, needed: list[bytes]
) -> None:
    assert tokens.required_tokens(pattern, fixed=fixed, ignore_case=icase, invert=False) == needed


def test_inverted_and_empty_patterns_need_nothing() -> None:
    assert tokens.required_tokens(" a ", fixed=True, ignore_case=False, invert=True) == []
    assert tokens.required_tokens("", fixed=True, ignore_case=False, invert=False) == []


def test_folding_covers_what_re2_folds_onto_ascii() -> None:
    """LONG S and KELVIN SIGN match s and k under RE2's -i: the index must hold them so."""
    line = "user=\u017fam id=\u212aevin end"
    found = tokens.line_tokens(line.encode())
    assert {b"sam", b"kevin"} <= found
    assert LineMatcher(" id=kevin ", fixed=False, ignore_case=True).count(_Lines([line])) == 1


def test_a_filter_rules_out_absent_tokens() -> None:
    """The point of it: ids not in a batch are ruled out, nearly always (2-3 % false
    positives at 8 bits per token; 200 absent ids all passing would be a broken filter)."""
    ids = [secrets.token_hex(16).encode() for _ in range(5000)]
    bloom = tokens.build(ids, len(ids))
    assert all(tokens.may_contain(bloom, [i]) for i in ids)
    absent = [secrets.token_hex(16).encode() for _ in range(200)]
    assert sum(tokens.may_contain(bloom, [a]) for a in absent) < 50
    assert len(bloom) <= len(ids) * tokens.BITS_PER_TOKEN // 8 + tokens.BLOCK_BYTES
