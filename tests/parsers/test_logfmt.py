"""The logfmt parser against peer vectors.

Vectors: ``../shared/data/vectors/logfmt.jsonl``, taken as they are from go-logfmt/logfmt @
804e98ff (``decode_test.go``: TestDecoder_scan, TestDecoder_errors, TestDecoder_SyntaxError,
round trips; MIT), kr/logfmt @ 19f9bcb1 (``decode_test.go``, ``scanner_test.go``; MIT) and the
VRL ``parse_logfmt`` documentation examples.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers import get_parser
from parsers.logfmt import LogfmtParser, LogfmtSyntaxError, _scan_exact, encode, scan
from tests.parsers._vectors import params


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"]).decode("utf-8", "surrogateescape")
    assert isinstance(value, str)
    return value


def _scan_lines(text: str) -> list[str]:
    """The lines Go's ``bufio.ScanLines`` yields: split on LF, one trailing CR dropped, no
    final empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _parser(case: dict[str, Any]) -> LogfmtParser:
    options = case.get("decoder_options") or {}
    unknown = set(options) - {"decoder_buffer_size"}
    assert not unknown, f"vector option not mapped: {unknown}"
    size = options.get("decoder_buffer_size")
    # bufio.Scanner's buffer also holds the '\n' (or must not fill up at EOF), so a buffer of
    # N bytes takes lines of at most N - 1 bytes.
    return LogfmtParser(max_line_bytes=None if size is None else size - 1)


def _expected_value(source: str, value: Any) -> str | None:
    """Map a peer's "key without value" onto ours (None): kr/logfmt gives "", VRL gives true."""
    if source == "kr/logfmt" and value == "":
        return None
    if source == "vectordotdev/vrl" and value is True:
        return None
    assert value is None or isinstance(value, str)
    return value


@pytest.mark.parametrize("case", params("logfmt"))
def test_vector(case: dict[str, Any]) -> None:
    parser = _parser(case)
    source = case["source"]["repo"]
    lines = _scan_lines(_text(case["input"]))
    results = [parser.parse(line) for line in lines]

    if not case["valid"]:
        failing = [i for i, r in enumerate(results) if r.error is not None]
        assert failing, "accepted invalid input"
        first = failing[0]
        assert results[first].fields == {}
        error = case["error"]
        if "line" in error:
            # go-logfmt's SyntaxError: message, line and byte position.
            assert first + 1 == error["line"]
            with pytest.raises(LogfmtSyntaxError) as info:
                scan(lines[first])
            assert (info.value.msg, info.value.pos) == (error["msg"], error["pos"])
            assert f"at byte {error['pos']}" in (results[first].error or "")
        return

    for r in results:
        assert r.error is None, r.error
    if "expected_records" in case:
        want = [
            [(k, _expected_value(source, v)) for k, v in record or []]
            for record in case["expected_records"]
        ]
        assert [scan(line) for line in lines] == want
        assert [r.fields for r in results] == [dict(pairs) for pairs in want]
    if "expected_object" in case:
        want_obj = {k: _expected_value(source, v) for k, v in case["expected_object"].items()}
        assert [r.fields for r in results] == [want_obj]
    if "expected_reencoded" in case:
        out = "".join(encode(scan(line)) + "\n" for line in lines)
        assert out == case["expected_reencoded"]


def test_ts_and_level_from_fields() -> None:
    got = get_parser("logfmt").parse(
        'ts=2024-01-02T03:04:05.123456789Z level=warn msg="disk almost full" pct=97'
    )
    assert got.ts == 1704164645_123456789
    assert got.level == "warn"
    assert got.fields["msg"] == "disk almost full"
    got = LogfmtParser(time_key="when").parse("when=1704164645 ts=nonsense lvl=ERR")
    assert got.ts == 1704164645 * 10**9
    assert got.level == "error"


def test_errors_say_what_and_where() -> None:
    got = LogfmtParser().parse('a=1 b="unterminated')
    assert got.fields == {}
    assert got.error == "logfmt: unterminated quoted value at byte 20"


def test_repeated_key_keeps_last_value() -> None:
    assert LogfmtParser().parse("a=1 a=2").fields == {"a": "2"}


def test_encode_quotes_what_needs_it() -> None:
    assert encode([("a", "x y"), ("b", None), ("c", "null"), ("d", 'q"\t\x01\x7f'), ("e", 5)]) == (
        'a="x y" b= c="null" d="q\\"\\t\\u0001\\u007f" e=5'
    )
    for key in ("", "a b", "a=b", 'a"', "a\ufffd"):
        with pytest.raises(ValueError, match="invalid logfmt key"):
            encode([(key, "v")])


# Characters that matter to the grammar, plus a few ordinary and non-ASCII ones.
_ALPHABET = st.sampled_from([*'ab=" \\\tunt/\x01\x7f\ufffdé\ud800\udc80', "\\u", "\\ud83d\\ude00"])


@given(st.lists(_ALPHABET, max_size=24).map("".join))
def test_fast_path_agrees_with_exact_port(line: str) -> None:
    """The regex fast path and the character-by-character port of go-logfmt agree on
    everything: the same pairs, or the same error."""
    try:
        exact: Any = _scan_exact(line)
    except LogfmtSyntaxError as exc:
        exact = (exc.msg, exc.pos)
    try:
        fast: Any = scan(line)
    except LogfmtSyntaxError as exc:
        fast = (exc.msg, exc.pos)
    assert fast == exact


_KEY = st.text(min_size=1).filter(lambda k: not re.search('[\x00-\x20="\ufffd\ud800-\udfff]', k))


@given(st.lists(st.tuples(_KEY, st.one_of(st.none(), st.text())), max_size=6))
def test_encode_then_scan_round_trips(pairs: list[tuple[str, str | None]]) -> None:
    """What ``encode`` writes, ``scan`` reads back (an empty value reads as None, and invalid
    UTF-8 as U+FFFD, as in go-logfmt)."""
    want = [(k, re.sub("[\ud800-\udfff]", "\ufffd", v) if v else None) for k, v in pairs]
    assert scan(encode(pairs)) == want


@given(st.lists(st.sampled_from([*'ab= "\\x', "k=v", 'q="a b"', "é"]), max_size=16).map("".join))
def test_parser_fields_agree_with_exact_port(line: str) -> None:
    """``LogfmtParser``'s C-built fields equal go-logfmt's pairs with the last value of a key
    kept; errors where it errs."""
    try:
        want: Any = dict(_scan_exact(line))
    except LogfmtSyntaxError:
        want = None
    got = LogfmtParser().parse(line)
    if want is None:
        assert got.error is not None
    else:
        assert got.error is None
        assert got.fields == want


@pytest.mark.parametrize(
    "line",
    [
        'k="' + "\\a" * 50_000,
        "=a" * 50_000,
        '"' * 100_000,
        'k="a ' * 25_000,
        'k="' + "\\" * 100_000,
        'a=b"' * 25_000,
        "a" * 100_000 + "=",
    ],
    ids=["escapes", "equals", "quotes", "open-quotes", "backslashes", "bare-quote", "long-key"],
)
def test_adversarial_lines_finish(line: str) -> None:
    """Hostile 100 KB lines: answered (a quadratic path would not finish in any patience)."""
    got = LogfmtParser().parse(line)
    assert got.error is not None or got.fields
