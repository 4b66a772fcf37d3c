"""The syslog input's mapping of a message to a record (``collector.inputs.syslog_records``)
and the lenient reading it asks of ``parsers.syslog`` (``SyslogParser(lenient=True)``).

Vectors: ``../shared/data/vectors/syslog.jsonl`` (go-syslog, Beats, VRL: see
tests/parsers/test_syslog.py); every valid case must stay valid, with the same fields, when
read leniently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.inputs.syslog_records import RecordMaker
from parsers.syslog import SyslogParser, _Invalid, _parse_5424, _parse_5424_fast
from tests.parsers._vectors import decode_text, load_cases

ARRIVED = 1_700_000_000_123_456_789


def make(message: bytes, peer: str = "192.0.2.7") -> Any:
    return RecordMaker("syslog-tcp").make(message, peer, ARRIVED)


def ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9  # type: ignore[misc]


def test_rfc5424_with_structured_data() -> None:
    msg = (
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 8710 ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application"][origin] An application event'
    )
    r = make(msg)
    assert r.line == msg.decode()
    assert r.ts == ns(2003, 10, 11, 22, 14, 15) + 3_000_000
    assert (r.host, r.source, r.level) == ("mymachine.example.com", "evntslog", "info")
    assert r.fields == {
        "priority": 165,
        "facility": 20,
        "severity": 5,
        "version": 1,
        "hostname": "mymachine.example.com",
        "appname": "evntslog",
        "procid": "8710",
        "msgid": "ID47",
        "exampleSDID@32473.iut": "3",
        "exampleSDID@32473.eventSource": "Application",
        "origin": "",
        "message": "An application event",
    }


def test_without_hostname_the_peer_and_without_app_the_input() -> None:
    r = make(b"<14>1 - - - - - - no header at all", peer="198.51.100.1")
    assert (r.host, r.source, r.ts) == ("198.51.100.1", "syslog-tcp", ARRIVED)
    assert r.fields["message"] == "no header at all"


def test_rsyslog_traditional_format_tag_without_colon_and_escapes() -> None:
    """What rsyslog's RSYSLOG_TraditionalForwardFormat sends for imfile's tag="myapp": no year,
    no zone, the tag without a colon, a tab escaped as #011 and a newline as #012."""
    r = make(b"<133>Jun 15 12:00:00 web1 myapp a#011tab and#012a second line #033[0m")
    assert (r.host, r.source, r.level) == ("web1", "myapp", "info")
    assert r.fields["message"] == "a\ttab and\na second line #033[0m"
    assert r.line.endswith("a\ttab and\na second line #033[0m")
    stamp = datetime.fromtimestamp(r.ts / 1e9, UTC)
    assert (stamp.month, stamp.day, stamp.hour) == (6, 15, 12)  # read as UTC, year inferred


def test_rfc3164_from_logger() -> None:
    r = make(b"<13>Jun 15 12:00:00 web1 alice[42]: hello")
    assert r.fields == {
        "priority": 13,
        "facility": 1,
        "severity": 5,
        "hostname": "web1",
        "appname": "alice",
        "procid": "42",
        "message": "hello",
    }


def test_lenient_rfc5424_keeps_host_and_app() -> None:
    """A 9-digit fraction (journald, Go senders) breaks RFC 5424's grammar; the strict parser
    refuses the line, the lenient reading keeps everything."""
    msg = "<11>1 2024-06-15T12:00:00.123456789+02:00 db1 postgres 77 - - checkpoint"
    assert SyslogParser().parse(msg).error is not None
    r = make(msg.encode())
    assert r.ts == ns(2024, 6, 15, 10, 0, 0) + 123_456_789
    assert (r.host, r.source, r.level) == ("db1", "postgres", "error")
    assert r.fields["procid"] == "77"
    assert r.fields["message"] == "checkpoint"


def test_lenient_rfc5424_broken_structured_data_stays_in_the_message() -> None:
    r = make(b'<11>1 - db1 pg - - [x@1 a="unterminated] text')
    assert (r.host, r.source) == ("db1", "pg")
    assert r.fields["message"] == '[x@1 a="unterminated] text'


def test_a_timestamp_past_int64_takes_the_arrival_time() -> None:
    r = make(b"<13>1 9999-12-31T23:59:59Z h app - - - far")
    assert r.ts == ARRIVED


def test_a_bare_pri_is_a_message() -> None:
    """RFC 3164 section 4.3.3: what follows a valid PRI is the message."""
    r = make(b"<30>just text, no header")
    assert (r.host, r.level) == ("192.0.2.7", "info")
    assert r.fields == {
        "priority": 30,
        "facility": 3,
        "severity": 6,
        "message": "just text, no header",
    }


@pytest.mark.parametrize(
    "message", [b"no pri at all", b"<999>out of range", b"\x00\x01\xff", b"<13", b""]
)
def test_not_syslog(message: bytes) -> None:
    assert make(message) is None


def test_invalid_utf8_is_replaced() -> None:
    r = make(b"<13>1 - h app - - - caf\xe9")
    assert r.fields["message"] == "caf\ufffd"


VALID = [c for c in load_cases("syslog") if c["valid"]]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["id"])
def test_lenient_reading_keeps_every_valid_vector(case: dict[str, Any]) -> None:
    """What the strict parser reads, the lenient one reads the same, except that an RFC 3164
    message's first word after the hostname is its tag even without a colon (rsyslog's
    reading: its pmrfc3164 ends a tag at ':' or a space)."""
    text = decode_text(case["input"])
    strict = SyslogParser(mode="auto").parse(text)
    lenient = SyslogParser(mode="auto", lenient=True).parse(text)
    assert lenient.error is None
    if strict.error is not None or lenient == strict:
        return
    assert "appname" not in strict.fields
    tag, message = lenient.fields.pop("appname"), lenient.fields.pop("message")
    lenient.fields.pop("procid", None)
    assert strict.fields.pop("message").startswith(tag)
    assert message in text
    assert (lenient.fields, lenient.ts, lenient.level) == (strict.fields, strict.ts, strict.level)


def test_lenient_reads_the_tag_without_colon_as_vrl_does() -> None:
    """vrl/rfc3164/non_structured_data_in_message: VRL takes the bare word after the hostname
    as the tag; so does rsyslog, and so does the lenient reading (the strict one follows
    go-syslog and Beats, which keep it in the message)."""
    (case,) = [c for c in VALID if c["id"] == "vrl/rfc3164/non_structured_data_in_message"]
    got = SyslogParser(lenient=True).parse(decode_text(case["input"]))
    assert got.fields["appname"] == case["expected"]["appname"]
    assert got.fields["message"] == case["expected"]["message"]


def _one_of(*options: str) -> st.SearchStrategy[str]:
    """One of ``options``, the first (valid) one half of the time."""
    return st.sampled_from([options[0]] * (len(options) - 1) + list(options[1:]))


# Lines shaped like RFC 5424 headers, each part valid or subtly not.
_LINES_5424 = st.tuples(
    _one_of("<13>", "<0>", "<191>", "<192>", "<013>", "13>"),
    _one_of("1 ", "12 ", "999 ", "1000 ", "0 ", "1"),
    _one_of(
        "- ",
        "2024-06-15T12:00:00Z ",
        "2024-06-15T12:00:00.123456+02:00 ",
        "2024-02-30T12:00:00Z ",
        "2024-06-15T12:00:00.1234567Z ",
        "2024-06-15t12:00:00Z ",
        "2024-06-15T24:00:00Z ",
    ),
    _one_of("host ", "- ", "h\u00e9 ", "x" * 256 + " ", "  "),
    _one_of("app ", "- ", "a" * 49 + " ", "a" * 48 + " "),
    _one_of("1234 ", "- ", "p" * 129 + " "),
    _one_of("ID47 ", "- ", "m" * 33 + " "),
    _one_of("-", '[a b="c"]', "-x", "- "),
    _one_of("", " msg", " \ufeffmulti\nline", " ", "  two"),
).map("".join)


@settings(max_examples=500)
@given(_LINES_5424)
def test_rfc5424_fast_path_equals_general_path(line: str) -> None:
    """Where the one-regex fast path answers, the strict grammar gives the same answer; where
    it does not, the line is not of the common form (or not valid)."""
    fast = _parse_5424_fast(line)
    try:
        strict: Any = _parse_5424(line, False)
    except _Invalid:
        strict = None
    if fast is not None:
        assert strict == fast


def test_rfc5424_fast_path_takes_the_common_form() -> None:
    line = "<14>1 2024-06-15T12:00:00.000001+00:00 web-1 nginx 1000 - - GET / 200"
    assert _parse_5424_fast(line) == _parse_5424(line, False)
    assert _parse_5424_fast(line) is not None
