"""The batch format: round trips, corruption, limits."""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import records
from wharf import batch as wb
from wharf.errors import BatchTooLarge, CorruptBatch, InvalidArgument
from wharf.record import Record


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=40))
def test_read_of_build_gives_the_records_back(recs: list[Record]) -> None:
    data = wb.build(recs)
    wb.Batch(data).validate()
    assert wb.read(data) == recs


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=30), st.integers(10_000, 40_000), st.text(max_size=10))
def test_huge_lines_and_fields_round_trip(seed: str, repeat: int, key: str) -> None:
    line = seed * repeat  # up to ~5 MB of text
    recs = [Record(ts=1, line=line, fields={key: line[::-1]}), Record(ts=2, line="")]
    assert wb.read(wb.build(recs)) == recs


def test_empty_lines_and_newlines_inside_records_round_trip() -> None:
    recs = [Record(ts=0, line=""), Record(ts=1, line="a\nb\r\n"), Record(ts=2, line="")]
    assert wb.read(wb.build(recs)) == recs


def test_header_fields_and_offsets() -> None:
    recs = [Record(ts=t, line=str(t), host=f"h{t % 3}") for t in (5, 3, 9)]
    pid = bytes(range(16))
    data = wb.build(recs, producer_id=pid, producer_seq=42, spans=[wb.Span("f", 0, 30)])
    b = wb.Batch(data)
    assert (b.header.base_offset, b.header.min_ts, b.header.max_ts) == (-1, 3, 9)
    assert (b.header.producer_id, b.header.producer_seq, b.header.record_count) == (pid, 42, 3)
    assert b.spans == [wb.Span("f", 0, 30)] and b.hosts == ["h2", "h0"]
    stored = wb.with_offset(data, 1000, 1234)
    h = wb.Batch(stored).header
    assert (h.base_offset, h.append_ms, h.last_offset, h.next_offset) == (1000, 1234, 1002, 1003)
    assert wb.read(stored) == recs


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_corrupt_batch(data: bytes) -> None:
    with pytest.raises(CorruptBatch):
        wb.Batch(data).records()


_SAMPLE = wb.build(
    [Record(ts=i, line=f"line {i} é", fields={"n": i}, file_id="f", offset=i) for i in range(50)]
)


@given(st.integers(min_value=0, max_value=len(_SAMPLE) - 1))
def test_every_truncation_is_detected(cut: int) -> None:
    with pytest.raises(CorruptBatch):
        wb.Batch(_SAMPLE[:cut]).records()


@settings(max_examples=400)
@given(st.integers(min_value=wb.PREFIX_SIZE, max_value=len(_SAMPLE) - 1), st.integers(1, 255))
def test_every_flipped_byte_in_the_checked_part_is_detected(pos: int, xor: int) -> None:
    data = bytearray(_SAMPLE)
    data[pos] ^= xor
    with pytest.raises(CorruptBatch):
        wb.Batch(bytes(data)).records()


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0))
def test_garbage_with_a_valid_checksum_still_raises_only_corrupt_batch(
    noise: bytes, seed: int
) -> None:
    """Structural checks hold even when the CRC is recomputed over damaged bytes (a buggy or
    hostile producer), so a reader can never crash on bytes it accepted."""

    data = bytearray(_SAMPLE)
    pos = wb.HEADER_SIZE + seed % (len(data) - wb.HEADER_SIZE)
    data[pos : pos + len(noise)] = noise
    struct.pack_into(">I", data, 16, len(data) - wb.PREFIX_SIZE)
    struct.pack_into(">I", data, 20, zlib.crc32(bytes(data[24:])))
    with contextlib.suppress(CorruptBatch):
        wb.Batch(bytes(data)).validate()
    with contextlib.suppress(CorruptBatch):
        wb.Batch(bytes(data)).records()


def test_decompression_bomb_is_refused_before_decompressing() -> None:
    """A frame that declares more than the header allows is refused from its header alone."""

    bomb = zstandard.ZstdCompressor().compress(b"\0" * (wb.MAX_LINES_BYTES + 1))
    data = bytearray(_SAMPLE)
    h = wb.read_header(data)
    start = wb.HEADER_SIZE + h.meta_len + h.cols_clen
    data[start : start + h.lines_clen] = bomb
    struct.pack_into(">II", data, 86, len(bomb), wb.MAX_LINES_BYTES + 1)
    struct.pack_into(">I", data, 16, len(data) - wb.PREFIX_SIZE)
    struct.pack_into(">I", data, 20, zlib.crc32(bytes(data[24:])))
    with pytest.raises(BatchTooLarge):
        wb.Batch(bytes(data))
    # Same bomb, but the header lies about the size: the frame's own declaration gives it away.
    struct.pack_into(">I", data, 90, 1000)
    struct.pack_into(">I", data, 20, zlib.crc32(bytes(data[24:])))
    with pytest.raises(CorruptBatch, match="declares"):
        wb.Batch(bytes(data)).lines_blob()


def test_limits_are_enforced_when_building() -> None:
    with pytest.raises(InvalidArgument):
        wb.build([])
    with pytest.raises(InvalidArgument):
        wb.build([Record(ts=0, line="x")], producer_id=b"short")
    with pytest.raises(BatchTooLarge):
        wb.build([Record(ts=0, line="x" * (wb.MAX_LINES_BYTES + 1))])


def test_iter_batches_walks_back_to_back_batches_and_names_positions() -> None:
    a = wb.with_offset(wb.build([Record(ts=1, line="a")]), 0, 1)
    b = wb.with_offset(wb.build([Record(ts=2, line="b")]), 1, 1)
    assert [x.records()[0].line for x in wb.iter_batches(a + b)] == ["a", "b"]
    bad = bytearray(a + b)
    bad[len(a) + 40] ^= 1
    with pytest.raises(CorruptBatch, match=f"seg@{len(a)}"):
        list(wb.iter_batches(bytes(bad), where="seg"))
