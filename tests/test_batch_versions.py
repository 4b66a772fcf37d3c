"""Batch versions 1 and 2: old batches stay readable, both versions round-trip every record,
``convert`` moves between them, and a batch built from runs (the shipper's zero-copy path)
holds the records the per-record path would."""

from __future__ import annotations

import contextlib
import struct
import zlib
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import FieldColumns
from tests.strategies import records
from wharf import batch as wb
from wharf.errors import BatchTooLarge, CorruptBatch, InvalidArgument
from wharf.record import Record

V1 = Path(__file__).resolve().parent / "batch_v1"


def _expected(name: str) -> list[Record]:
    rows = msgspec.msgpack.decode((V1 / f"{name}.records.msgpack").read_bytes())
    return [
        Record(
            ts=ts,
            line=line.decode("utf-8", "surrogatepass"),
            host=host,
            source=source,
            fields=fields,
            level=level,
            file_id=file_id,
            offset=offset,
        )
        for ts, line, host, source, fields, level, file_id, offset in rows
    ]


@pytest.mark.parametrize("name", ["raw", "clf", "mixed", "stored"])
def test_version_1_batches_of_before_version_2_are_still_read(name: str) -> None:
    data = (V1 / f"{name}.batch").read_bytes()
    expected = _expected("raw" if name == "stored" else name)
    b = wb.Batch(data)
    b.validate()
    assert b.version == 1
    assert b.records() == expected
    picks = [len(expected) - 1, 0, 2]
    assert b.records(picks) == [expected[i] for i in picks]
    assert [b.lines_blob()[a:z].decode("utf-8", "surrogatepass") for a, z in map(
        b.line_span, range(len(b))
    )] == [r.line for r in expected]  # fmt: skip
    if name == "stored":
        assert (b.header.base_offset, b.header.append_ms) == (4242, 1_700_000_000_999)


@pytest.mark.parametrize(("name", "level"), [("raw", 3), ("clf", 3), ("mixed", 1)])
def test_the_version_1_writer_still_writes_them_byte_for_byte(name: str, level: int) -> None:
    data = (V1 / f"{name}.batch").read_bytes()
    b = wb.Batch(data)
    again = wb.build(
        _expected(name),
        producer_id=b.header.producer_id,
        producer_seq=b.header.producer_seq,
        spans=b.spans,
        level=level,
        version=1,
    )
    assert again == data


@pytest.mark.parametrize("name", ["raw", "clf", "mixed", "stored"])
def test_convert_keeps_records_spans_and_producer(name: str) -> None:
    data = (V1 / f"{name}.batch").read_bytes()
    v2 = wb.convert(data, 2)
    b1, b2 = wb.Batch(data), wb.Batch(v2)
    b2.validate()
    assert (b2.version, wb.version_of(v2)) == (2, 2)
    assert b2.records() == b1.records()
    assert b2.spans == b1.spans
    assert (b2.header.producer_id, b2.header.producer_seq) == (
        b1.header.producer_id,
        b1.header.producer_seq,
    )
    back = wb.convert(v2, 1)
    assert wb.Batch(back).records() == b1.records()
    assert wb.convert(v2, 2) is v2  # already in that version: as it is
    with pytest.raises(InvalidArgument):
        wb.convert(v2, 3)


def test_clf_fields_are_smaller_and_columnar_in_version_2() -> None:
    data = (V1 / "clf.batch").read_bytes()
    h1 = wb.Batch(data).header
    h2 = wb.Batch(wb.convert(data, 2)).header
    assert h2.fields_clen < h1.fields_clen
    assert h2.cols_ulen < h1.cols_ulen  # no fields_len column, offsets mostly zero


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=40), st.sampled_from([1, 2]))
def test_both_versions_round_trip_any_records(recs: list[Record], version: int) -> None:
    data = wb.build(recs, version=version)
    b = wb.Batch(data)
    assert b.version == version
    b.validate()
    assert b.records() == recs
    # Key order survives too (a dict compares equal in any order).
    assert [list(r.fields) for r in b.records()] == [list(r.fields) for r in recs]
    picks = list(range(len(recs) - 1, -1, -2))
    assert b.records(picks) == [recs[i] for i in picks]


def _run_records(run: wb.Run) -> list[Record]:
    return run.records()


_line = st.text(
    st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), max_size=30
)


@st.composite
def _runs(draw: st.DrawFn) -> wb.Run:
    lines = draw(st.lists(_line, min_size=1, max_size=12))
    blob = "\n".join(lines).encode()
    n = len(lines)
    fields = None
    if draw(st.booleans()):
        fields = FieldColumns.from_dicts(
            draw(
                st.lists(
                    st.dictionaries(
                        st.sampled_from(["a", "b", "status", "é"]),
                        st.one_of(
                            st.integers(-5, 5),
                            st.text(max_size=4),
                            st.floats(allow_nan=False),
                            st.none(),
                        ),
                        max_size=3,
                    ),
                    min_size=n,
                    max_size=n,
                )
            )
        )
    per_record_ts = draw(st.booleans())
    levels = draw(
        st.none() | st.lists(st.sampled_from([None, "info", "error"]), min_size=n, max_size=n)
    )
    return wb.Run(
        blob,
        n,
        draw(st.integers(0, 2**40)),
        ts=draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n))
        if per_record_ts
        else draw(st.integers(0, 2**62)),
        host=draw(st.sampled_from(["h1", "h2"])),
        source="/var/log/x.log",
        file_id=draw(st.sampled_from(["1:2:a", "3:4:b"])),
        levels=levels,
        fields=fields,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(_runs(), st.lists(records, min_size=1, max_size=5)), min_size=1, max_size=5),
    st.sampled_from([1, 2]),
)
def test_a_batch_of_runs_holds_the_records_of_the_per_record_path(
    parts: list[wb.Run | list[Record]], version: int
) -> None:
    expected: list[Record] = []
    for p in parts:
        expected += p.records() if isinstance(p, wb.Run) else p
    data = wb.build_parts(parts, spans=[wb.Span("f", 0, 1)], version=version)
    b = wb.Batch(data)
    b.validate()
    assert b.records() == expected
    assert wb.read(wb.build(expected, version=version)) == expected


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_runs(), st.data())
def test_a_run_split_anywhere_is_the_same_records(run: wb.Run, data: st.DataObject) -> None:
    if run.count < 2:
        return
    k = data.draw(st.integers(1, run.count - 1))
    head, rest = run.split(k)
    assert head.records() + rest.records() == run.records()
    assert (head.count, rest.count, rest.offset, rest.end) == (k, run.count - k, head.end, run.end)
    need = data.draw(st.integers(1, len(run.blob) + 1))
    taken = run.lines_for(need)
    covered = [len(t.encode()) + 1 for t in run.texts()]
    assert sum(covered[:taken]) >= need and (taken == 1 or sum(covered[: taken - 1]) < need)


def test_a_raw_run_is_one_offset_and_zeros() -> None:
    lines = [f"line {i}" for i in range(1000)]
    run = wb.Run("\n".join(lines).encode(), 1000, 5000, ts=7, host="h", source="s", file_id="f")
    data = wb.build_parts([run])
    b = wb.Batch(data)
    assert b.offsets()[:3] == [5000, 5007, 5014] and b.offsets()[-1] == run.end - 9
    assert b.header.cols_clen < 200  # 1000 records' columns: a few zstd runs of zeros
    assert b.header.fields_ulen == 0


# -- damage ----------------------------------------------------------------------------------

_V2 = wb.build(
    [
        Record(
            ts=i,
            line=f"line {i} é" if i % 7 else f"multi\nline {i}",
            fields={"s": f"v{i}", "n": i, "f": i / 3, "any": [i, None], "b": i % 2 == 0}
            if i % 5
            else {},
            level="info" if i % 3 else None,
            file_id="f",
            offset=i * 20,
        )
        for i in range(60)
    ]
)


@settings(max_examples=400)
@given(st.integers(min_value=wb.PREFIX_SIZE, max_value=len(_V2) - 1), st.integers(1, 255))
def test_every_flipped_byte_of_a_version_2_batch_is_detected(pos: int, xor: int) -> None:
    data = bytearray(_V2)
    data[pos] ^= xor
    with pytest.raises(CorruptBatch):
        wb.Batch(bytes(data)).records()


@settings(max_examples=400)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0))
def test_version_2_garbage_with_a_valid_checksum_raises_only_corrupt_batch(
    noise: bytes, seed: int
) -> None:
    data = bytearray(_V2)
    pos = wb.HEADER_SIZE + seed % (len(data) - wb.HEADER_SIZE)
    data[pos : pos + len(noise)] = noise
    struct.pack_into(">I", data, 16, len(data) - wb.PREFIX_SIZE)
    struct.pack_into(">I", data, 20, zlib.crc32(bytes(data[24:])))
    with contextlib.suppress(CorruptBatch):
        wb.Batch(bytes(data)).validate()
    with contextlib.suppress(CorruptBatch):
        wb.Batch(bytes(data)).records()
    with contextlib.suppress(CorruptBatch):
        wb.Batch(bytes(data)).records([3, 1])


def test_limits_and_arguments_of_build_parts() -> None:
    with pytest.raises(InvalidArgument):
        wb.build_parts([])
    with pytest.raises(InvalidArgument):
        wb.build([Record(ts=0, line="x")], version=3)
    with pytest.raises(BatchTooLarge):
        wb.build_parts(
            [wb.Run(b"x" * (wb.MAX_LINES_BYTES + 1), 1, 0, ts=0, host="", source="", file_id="")]
        )
    for version in (1, 2):
        with pytest.raises(InvalidArgument, match="cannot be encoded"):
            wb.build([Record(ts=0, line="x", fields={"k": object()})], version=version)
