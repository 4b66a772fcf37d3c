"""The forward protocol's pure core (``collector.inputs.fluent_wire``): messages encoded from
the specification (``tests/inputs/forward_client.py``) decode the same however the stream is
cut, garbage raises only ``ProtocolError``, every limit holds at its boundary, the handshake
matches what fluentd's and the npm client's digests compute, and events map to records as the
module docstring says."""

from __future__ import annotations

import gzip
import itertools
import math
import os
import zlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.inputs.fluent_wire import (
    FEED_BYTES,
    MAX_DEPTH,
    PING_MAX_BYTES,
    Decoder,
    Events,
    Handshake,
    Ping,
    ack,
    decode_events,
    gunzip,
)
from tests.inputs.forward_client import event_time, message, pack, sha512_hex
from wharf.errors import BadFrame, FrameTooLarge, ProtocolError, UnexpectedFrame
from wharf.record import Record

NOW = 1_800_000_000_123_456_789
LIMIT = 1 << 20
MODES = ("Message", "Forward", "PackedForward", "CompressedPackedForward")


def decode_all(stream: bytes, cuts: list[int] | None = None, limit: int = LIMIT) -> list[Events]:
    """Every message of ``stream`` fed in pieces cut at ``cuts``."""
    decoder = Decoder(limit)
    out: list[Events] = []
    bounds = [0, *sorted(set(cuts or [])), len(stream)]
    for a, b in itertools.pairwise(bounds):
        decoder.feed(stream[a:b])
        while (m := decoder.next_message()) is not None:
            assert isinstance(m, Events)
            out.append(m)
    assert decoder.pending == 0
    return out


def records_of(events: list[Events], host: str = "10.0.0.9") -> list[Record]:
    out: list[Record] = []
    for e in events:
        decoded = decode_events(e, now_ns=NOW, host=host, max_bytes=LIMIT)
        assert decoded.malformed == 0, decoded.problem
        out.extend(decoded.records)
    return out


# -- strategies --------------------------------------------------------------------------------

keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
scalars = st.one_of(
    st.text(max_size=40),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)
)
records = st.dictionaries(keys, values, max_size=4)
times = st.one_of(
    st.integers(1, 2**32 - 1),
    st.builds(
        lambda s, n: event_time(s * 10**9 + n), st.integers(1, 2**32 - 1), st.integers(0, 10**9 - 1)
    ),
    st.just(0),
    st.none(),
)
tags = st.text(min_size=1, max_size=30)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    mode = draw(st.sampled_from(MODES))
    n = 1 if mode == "Message" else draw(st.integers(1, 5))
    events = [(draw(times), draw(records)) for _ in range(n)]
    chunk = draw(st.none() | st.text(min_size=1, max_size=24))
    members = draw(st.integers(1, max(1, min(n, 3))))
    return message(mode, draw(tags), events, chunk=chunk, members=members)


streams = st.lists(messages() | st.just(pack(None)), min_size=1, max_size=4).map(b"".join)


# -- properties ----------------------------------------------------------------------------------


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(streams, st.data())
def test_any_chunking_gives_the_same_messages_and_records(
    stream: bytes, data: st.DataObject
) -> None:
    whole = decode_all(stream)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert decode_all(stream, cuts) == whole
    assert records_of(decode_all(stream, cuts)) == records_of(whole)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(streams)
def test_one_byte_at_a_time(stream: bytes) -> None:
    assert decode_all(stream, list(range(len(stream)))) == decode_all(stream)


@settings(max_examples=150)
@given(st.sampled_from(MODES), tags, st.lists(st.tuples(times, records), min_size=1, max_size=5))
def test_every_event_becomes_one_record(mode: str, tag: str, events: list[tuple[Any, Any]]) -> None:
    if mode == "Message":
        events = events[:1]
    (got,) = decode_all(message(mode, tag, events, chunk="c"))
    assert (got.tag, got.mode, got.chunk) == (tag, mode, "c")
    out = records_of([got])
    assert len(out) == len(events)
    for (time, record), r in zip(events, out, strict=True):
        assert r.source == tag
        if time in (0, None):
            assert r.ts == NOW
        elif isinstance(time, int):
            assert r.ts == time * 10**9
        else:
            assert r.ts == int.from_bytes(time.data[:4], "big") * 10**9 + int.from_bytes(
                time.data[4:], "big"
            )
        key = next((k for k in ("log", "message", "msg") if isinstance(record.get(k), str)), None)
        if key is None:
            assert set(record) <= set(r.fields) | {"host", "hostname"}
        else:
            text = record[key]
            end = 2 if text.endswith("\r\n") else 1 if text.endswith("\n") else 0
            assert r.line == text[: len(text) - end]
            assert key not in r.fields


@settings(max_examples=500)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_garbage_raises_only_the_protocol_error(garbage: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes: messages, ``None`` (more needed) or a ``ProtocolError``; the records of
    whatever decoded as a message are records or a ``ProtocolError`` too."""
    decoder = Decoder(256)
    bounds = [0, *sorted({c for c in cuts if c < len(garbage)}), len(garbage)]
    try:
        for a, b in itertools.pairwise(bounds):
            decoder.feed(garbage[a:b])
            while (m := decoder.next_message()) is not None:
                assert isinstance(m, Events)
                decode_events(m, now_ns=NOW, host="h", max_bytes=256)
    except ProtocolError:
        with pytest.raises(ProtocolError):  # and the decoder stays failed
            decoder.next_message()


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_garbage_before_the_handshake(garbage: bytes) -> None:
    decoder = Decoder(LIMIT, handshake=True)
    decoder.feed(garbage)
    try:
        while (m := decoder.next_message()) is not None:
            assert isinstance(m, Ping)
    except ProtocolError:
        pass


# -- the mapping ---------------------------------------------------------------------------------


def one(record: Any, time: Any = 0, tag: str = "app.web", host: str = "10.0.0.9") -> Record:
    (events,) = decode_all(message("Message", tag, [(time, record)]))
    (r,) = records_of([events], host)
    return r


def test_message_keys_in_order_and_trailing_newline() -> None:
    r = one({"log": "from log\n", "message": "from message", "stream": "stdout"})
    assert r.line == "from log"
    assert r.fields == {"message": "from message", "stream": "stdout", "tag": "app.web"}
    assert one({"message": "m\r\n", "msg": "x"}).line == "m"
    assert one({"msg": "only msg"}).line == "only msg"
    assert one({"log": {"not": "text"}, "msg": "text"}).line == "text"


def test_no_message_key_the_record_as_json() -> None:
    r = one({"status": 200, "path": "/x", "host": "web-1"})
    assert r.line == '{"status":200,"path":"/x","host":"web-1"}'
    assert (r.host, r.fields) == ("web-1", {"status": 200, "path": "/x", "tag": "app.web"})


def test_host_from_the_record_else_the_given_one() -> None:
    assert one({"msg": "a", "hostname": "db-2"}).host == "db-2"
    assert one({"msg": "a", "host": ""}, host="10.1.1.1").host == "10.1.1.1"
    assert one({"msg": "a"}, host="client-host").host == "client-host"


def test_record_tag_kept_forward_tag_is_source() -> None:
    r = one({"msg": "a", "tag": "own"}, tag="fwd.tag")
    assert (r.source, r.fields["tag"]) == ("fwd.tag", "own")


def test_level_from_fields() -> None:
    assert one({"msg": "a", "level": "WARNING"}).level == "warn"
    assert one({"msg": "a", "severity": 3}).level == "error"
    assert one({"msg": "a"}).level is None


def test_times() -> None:
    assert one({"msg": "a"}, event_time(1_700_000_000_000_000_123)).ts == 1_700_000_000_000_000_123
    assert one({"msg": "a"}, 1_700_000_000).ts == 1_700_000_000 * 10**9
    assert one({"msg": "a"}, 1_700_000_000.5).ts == 1_700_000_000_500_000_000
    assert one({"msg": "a"}, None).ts == NOW
    assert one({"msg": "a"}, 0).ts == NOW
    # v1.5: [time, metadata]
    assert one({"msg": "a"}, [event_time(5 * 10**9 + 1), {"k": "v"}]).ts == 5 * 10**9 + 1
    # msgpack's own timestamp extension (-1)
    assert one({"msg": "a"}, msgpack.Timestamp(7, 8)).ts == 7 * 10**9 + 8


def test_values_made_plain() -> None:
    r = one(
        {
            "msg": "a",
            "bin": b"caf\xc3\xa9 \xff",
            "when": event_time(10**9 + 5),
            "ext": msgpack.ExtType(42, b"\x01\x02"),
            "nested": {"list": [1, b"x", {"t": msgpack.Timestamp(1, 0)}]},
        }
    )
    assert r.fields["bin"] == "café \ufffd"
    assert r.fields["when"] == 10**9 + 5
    assert r.fields["ext"] == {"ext": 42, "data": "0102"}
    assert r.fields["nested"] == {"list": [1, "x", {"t": 10**9}]}


def test_a_string_record_is_the_line() -> None:
    """What Python's fluent.handler sends without FluentRecordFormatter."""
    r = one("plain text from logging")
    assert (r.line, r.fields) == ("plain text from logging", {"tag": "app.web"})


@pytest.mark.parametrize(
    ("time", "record", "why"),
    [
        (0, 42, "the record is an integer, not a map"),
        (0, [1, 2], "the record is an array of 2, not a map"),
        ("yesterday", {"m": 1}, "the time is a string of 9"),
        (-5, {"m": 1}, "time -5 is not seconds"),
        (2**40, {"m": 1}, "is not seconds since 1970 up to 2262"),
        (math.inf, {"m": 1}, "is not seconds"),
        (True, {"m": 1}, "the time is a boolean"),
        (event_time(0)._replace(data=b"\x00\x00\x00\x01\xff\xff\xff\xff"), {"m": 1}, "nanoseconds"),
    ],
)
def test_bad_events_are_skipped_and_counted(time: Any, record: Any, why: str) -> None:
    good = (0, {"msg": "good"})
    (e,) = decode_all(message("Forward", "t", [good, (time, record), good], chunk="k"))
    decoded = decode_events(e, now_ns=NOW, host="h", max_bytes=LIMIT)
    assert [r.line for r in decoded.records] == ["good", "good"]
    assert decoded.malformed == 1
    assert decoded.problem is not None and why in decoded.problem
    assert "event 1 of a Forward message for tag 't'" in decoded.problem


def test_entries_that_are_not_pairs_are_skipped() -> None:
    stream = pack(["t", [[0, {"msg": "a"}], [1, 2, 3]]])
    (e,) = decode_all(stream)
    decoded = decode_events(e, now_ns=NOW, host="h", max_bytes=LIMIT)
    assert ([r.line for r in decoded.records], decoded.malformed) == (["a"], 1)


def test_nesting_deeper_than_the_limit_is_malformed() -> None:
    deep: Any = "bottom"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    (e,) = decode_all(message("Message", "t", [(0, {"msg": "a", "deep": deep})]))
    decoded = decode_events(e, now_ns=NOW, host="h", max_bytes=LIMIT)
    assert decoded.malformed == 1 and "nested deeper than 32" in str(decoded.problem)
    shallow: Any = "bottom"
    for _ in range(MAX_DEPTH - 1):
        shallow = [shallow]
    assert one({"msg": "a", "deep": shallow}).fields["deep"] == shallow


# -- messages and options ------------------------------------------------------------------------


def test_heartbeats_are_skipped() -> None:
    stream = pack(None) + message("Message", "t", [(0, {"msg": "a"})]) + pack(None)
    assert [e.tag for e in decode_all(stream)] == ["t"]


def test_options() -> None:
    (e,) = decode_all(
        message("PackedForward", "t", [(0, {"msg": "a"})], option={"size": 1, "compressed": "text"})
    )
    assert (e.mode, e.chunk, e.signal) == ("PackedForward", None, 0)
    (e,) = decode_all(message("Forward", "t", [(0, {"msg": "a"})], option={"fluent_signal": 1}))
    assert e.signal == 1
    (e,) = decode_all(message("Forward", "t", [(0, {"msg": "a"})], option={"fluent_signal": "2"}))
    assert e.signal == 2


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("just a string", "a forward message is an array [tag, ...], got a string of 13"),
        ([], "a forward message is an array [tag, ...], got an array of 0"),
        ([1, 2, 3], "starts with its tag, a string; got an integer"),
        (["t"], "an array of 1 whose second element is nil"),
        (["t", 1, {}, {}, {}], "an array of 5"),
        (["t", b"", "opt"], "the option of a message for tag 't' is a string of 3, not a map"),
        (["t", b"", {"chunk": 5}], "option chunk is an integer, not a string"),
        (["t", b"", {"compressed": "zstd"}], "compressed='zstd' is not gzip or text"),
        (["t", [], {"compressed": "gzip"}], "compressed=gzip on a Forward message"),
        (["t", [], {"fluent_signal": "logs"}], "fluent_signal='logs' is not a number"),
        ([b"bin tag", 0, {}], "starts with its tag, a string; got a binary of 7 bytes"),
    ],
)
def test_what_is_not_a_forward_message(value: Any, why: str) -> None:
    decoder = Decoder(LIMIT)
    decoder.feed(pack(value))
    with pytest.raises(BadFrame, match=None) as info:
        decoder.next_message()
    assert why in str(info.value)


def test_invalid_msgpack_and_map_keys() -> None:
    for data, why in [
        (b"\xc1", "not a msgpack value"),
        (pack(["t", 0, {}])[:-1] + b"\x81\x01\x02", "not a msgpack value"),  # int map key
    ]:
        decoder = Decoder(LIMIT)
        decoder.feed(data)
        with pytest.raises(BadFrame, match=why):
            decoder.next_message()


def test_after_an_error_every_call_raises_it() -> None:
    decoder = Decoder(LIMIT)
    decoder.feed(b"\xc1" + message("Message", "t", [(0, {"msg": "a"})]))
    with pytest.raises(BadFrame) as first:
        decoder.next_message()
    decoder.feed(message("Message", "t", [(0, {"msg": "a"})]))
    with pytest.raises(BadFrame) as again:
        decoder.next_message()
    assert again.value is first.value


def test_packed_entries_that_do_not_decode() -> None:
    for blob, why in [
        (pack([0, {"msg": "a"}]) + b"\x92\x00", "end inside an event"),
        (pack([0, {"msg": "a"}]) + b"\xc1", "not msgpack"),
    ]:
        (e,) = decode_all(pack(["t", blob]))
        with pytest.raises(BadFrame, match=why):
            decode_events(e, now_ns=NOW, host="h", max_bytes=LIMIT)


def test_a_str_as_packed_entries_is_refused() -> None:
    decoder = Decoder(LIMIT)
    decoder.feed(pack(["t", "entries as a str", {}]))
    with pytest.raises(BadFrame, match="entries must be a msgpack bin"):
        decoder.next_message()


# -- limits ------------------------------------------------------------------------------------


def test_a_message_of_exactly_the_limit_passes_one_more_byte_does_not() -> None:
    sizes = {len(message("PackedForward", "t", [(0, {"msg": "x" * n})])): n for n in range(4200)}
    n = sizes[4096]
    assert (
        decode_all(message("PackedForward", "t", [(0, {"msg": "x" * n})]), limit=4096)[0].size
        == 4096
    )
    over = message("PackedForward", "t", [(0, {"msg": "x" * (n + 1)})])
    assert len(over) == 4097
    decoder = Decoder(4096)
    decoder.feed(over)
    with pytest.raises(FrameTooLarge):
        decoder.next_message()


@pytest.mark.parametrize(
    "head",
    [
        b"\x92\xa1t\xc6" + (100 << 20).to_bytes(4, "big"),  # [tag, bin32 of 100 MB
        b"\x93\xa1t\xdd" + (2**32 - 1).to_bytes(4, "big"),  # [tag, array32 of 4 G entries
        b"\x93\xa1t\x00\xdf" + (10**8).to_bytes(4, "big"),  # Message, a map of 10^8 pairs
        b"\xc6" + (100 << 20).to_bytes(4, "big"),  # a bare bin32 of 100 MB
        b"\xdd" + (10**9).to_bytes(4, "big"),  # an array of 10^9
    ],
)
def test_what_a_message_announces_is_refused_at_once(head: bytes) -> None:
    """Only the headers have arrived: the 100 MB never need to."""
    decoder = Decoder(LIMIT)
    decoder.feed(head)
    with pytest.raises(FrameTooLarge, match="announces"):
        decoder.next_message()


def test_an_announcement_right_after_a_whole_message_or_cut_in_two() -> None:
    big = b"\x92\xa1t\xc6" + (100 << 20).to_bytes(4, "big")
    decoder = Decoder(LIMIT)
    decoder.feed(message("Message", "t", [(0, {"msg": "a"})]) + big)
    assert isinstance(decoder.next_message(), Events)
    with pytest.raises(FrameTooLarge, match="announces"):
        decoder.next_message()
    for cut in range(1, len(big)):
        decoder = Decoder(LIMIT)
        decoder.feed(b"\xc0" * (FEED_BYTES - cut) + big[:cut])  # nil heartbeats, then the start
        assert decoder.next_message() is None
        decoder.feed(big[cut:])
        with pytest.raises(FrameTooLarge, match="announces"):
            decoder.next_message()


def test_a_message_growing_past_the_limit_is_refused() -> None:
    """An array announcing few elements, each a long string: caught as it grows, within one
    slice past the limit."""
    decoder = Decoder(LIMIT)
    decoder.feed(b"\x93\xa1t\x00\x81\xa3msg\xdb" + (50 << 20).to_bytes(4, "big"))
    assert decoder.next_message() is None  # a str inside the record: not announced up front
    sent = 0
    with pytest.raises(FrameTooLarge, match="grows past"):
        while sent < 3 * LIMIT:
            decoder.feed(b"x" * FEED_BYTES)
            sent += FEED_BYTES
            decoder.next_message()
    assert sent <= LIMIT + 2 * FEED_BYTES


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    """100 MiB of zeros in ~100 KiB of gzip: decompression stops past ``max_bytes``."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    bomb = b"".join(z.compress(chunk) for _ in range(100)) + z.flush()
    assert len(bomb) < 200_000
    (e,) = decode_all(pack(["t", bomb, {"compressed": "gzip"}]))
    with pytest.raises(FrameTooLarge, match="decompress past the limit"):
        decode_events(e, now_ns=NOW, host="h", max_bytes=LIMIT)


def test_gunzip_members_truncation_and_garbage() -> None:
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"") + gzip.compress(b"cd"), 10) == b"abcd"
    assert gunzip(b"", 10) == b""
    with pytest.raises(BadFrame, match="end inside a member"):
        gunzip(gzip.compress(os.urandom(1000))[:-20], 10_000)
    with pytest.raises(BadFrame, match="not gzip"):
        gunzip(b"plain text", 100)
    with pytest.raises(FrameTooLarge):
        gunzip(gzip.compress(b"x" * 11), 10)
    assert gunzip(gzip.compress(b"x" * 10), 10) == b"x" * 10


# -- the handshake -----------------------------------------------------------------------------


def ping(
    key: str, nonce: bytes, hostname: bytes = b"client-1", salt: bytes = os.urandom(16)
) -> bytes:
    """A PING as fluentd's and the npm client's out_forward compute it."""
    digest = sha512_hex(salt, hostname, nonce, key.encode())
    return pack(["PING", hostname.decode("latin-1"), salt, digest, "", ""])


def test_handshake_accepts_the_key_and_proves_its_own() -> None:
    nonce = os.urandom(16)
    hs = Handshake("k3y", "server-1", nonce)
    helo = msgpack.unpackb(hs.helo(), raw=False)
    assert helo == ["HELO", {"nonce": nonce, "auth": "", "keepalive": True}]
    decoder = Decoder(LIMIT, handshake=True)
    after = message("Message", "t", [(0, {"msg": "after the ping"})])
    decoder.feed(ping("k3y", nonce, salt=b"s" * 16) + after)  # events right behind the PING
    p = decoder.next_message()
    assert isinstance(p, Ping) and p.client == "client-1"
    pong, refused = hs.check(p)
    assert refused is None
    assert msgpack.unpackb(pong, raw=False) == [
        "PONG",
        True,
        "",
        "server-1",
        sha512_hex(b"s" * 16, b"server-1", nonce, b"k3y"),
    ]
    (e,) = [decoder.next_message()]
    assert isinstance(e, Events) and e.tag == "t"
    assert decoder.next_message() is None


def test_a_salt_of_raw_bytes_in_a_str() -> None:
    """Fluent Bit sends its 16 random salt bytes as a msgpack str: used as bytes, unchanged."""
    nonce, salt = os.urandom(16), b"\xff\xfe" + os.urandom(14)
    digest = sha512_hex(salt, b"fb", nonce, b"k")
    raw = b"\x96\xa4PING\xa2fb\xb0" + salt + b"\xda\x00\x80" + digest.encode() + b"\xa0\xa0"
    decoder = Decoder(LIMIT, handshake=True)
    decoder.feed(raw)
    p = decoder.next_message()
    assert isinstance(p, Ping) and p.salt == salt
    assert Handshake("k", "srv", nonce).check(p)[1] is None


def test_handshake_refuses_a_wrong_key() -> None:
    nonce = os.urandom(16)
    decoder = Decoder(LIMIT, handshake=True)
    decoder.feed(ping("wrong", nonce))
    p = decoder.next_message()
    assert isinstance(p, Ping)
    pong, refused = Handshake("right", "srv", nonce).check(p)
    assert refused == "shared_key mismatch"
    assert msgpack.unpackb(pong, raw=False) == ["PONG", False, "shared_key mismatch", "srv", ""]


def test_events_before_the_ping_are_refused() -> None:
    decoder = Decoder(LIMIT, handshake=True)
    decoder.feed(message("Message", "t", [(0, {"msg": "sneaky"})]))
    with pytest.raises(UnexpectedFrame, match="needs the shared-key handshake first"):
        decoder.next_message()


def test_before_the_handshake_the_limit_is_small() -> None:
    decoder = Decoder(LIMIT, handshake=True)
    decoder.feed(b"\x96\xa4PING\xdb" + (1 << 20).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge, match=f"past the limit of {PING_MAX_BYTES}"):
        decoder.next_message()
    decoder = Decoder(LIMIT, handshake=True)
    decoder.feed(pack(None) * (PING_MAX_BYTES + 1))  # heartbeats count too
    with pytest.raises(FrameTooLarge):
        decoder.next_message()


def test_ack() -> None:
    assert msgpack.unpackb(ack("Y2h1bms="), raw=False) == {"ack": "Y2h1bms="}
