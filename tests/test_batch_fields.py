"""The columnar fields section of batch version 2 (``wharf._fields``): typed columns, random
access, and the structural checks that let ``validate`` skip decoding every value."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import FieldColumns
from tests.strategies import records
from wharf import _fields
from wharf import batch as wb
from wharf.errors import CorruptBatch
from wharf.record import Record


def _batch(fields: list[dict[str, Any]]) -> bytes:
    return wb.build([Record(ts=i, line=f"l{i}", fields=f) for i, f in enumerate(fields)])


def _section(data: bytes) -> _fields._Section:
    b = wb.Batch(data)
    return msgspec.msgpack.decode(b._fields_blob(), type=_fields._Section)


def _replace_fields(data: bytes, change: Callable[[_fields._Section], _fields._Section]) -> bytes:
    """``data`` with its fields section changed, every size and the checksum made right again:
    what a buggy or hostile producer could send."""
    h = wb.read_header(data)
    raw = msgspec.msgpack.encode(change(_section(data)))
    z = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    start = wb.HEADER_SIZE + h.meta_len + h.cols_clen + h.lines_clen
    out = bytearray(data[:start] + z)
    struct.pack_into(">II", out, 94, len(z), len(raw))
    struct.pack_into(">I", out, 16, len(out) - wb.PREFIX_SIZE)
    struct.pack_into(">I", out, 20, zlib.crc32(bytes(out[24:])))
    return bytes(out)


def test_each_kind_of_column_is_chosen_by_its_values() -> None:
    data = _batch(
        [
            {
                "s": "a",
                "i": 1,
                "f": 0.5,
                "mixed": 1,
                "b": True,
                "big": 2**64 - 1,
                "nest": {"x": [1]},
                "nl": "a\nb",
            },
            {"s": "é\U0001f600", "i": -(2**63), "f": -1e300, "mixed": "x", "b": False},
            {"s": "", "i": 2**63 - 1, "f": float("inf"), "mixed": None, "big": 1, "nest": None},
        ]
    )
    section = _section(data)
    kinds = {k: c.kind for k, c in zip(section.keys, section.columns, strict=True)}
    assert kinds == {
        "s": _fields.LINES,
        "nl": _fields.STR,  # a newline in a value: lengths, not lines
        "i": _fields.INT,
        "f": _fields.FLOAT,
        "mixed": _fields.ANY,
        "b": _fields.ANY,  # a bool is not an int here
        "big": _fields.ANY,  # past int64
        "nest": _fields.ANY,
    }
    b = wb.Batch(data)
    b.validate()
    got = [r.fields for r in b.records()]
    assert got[1] == {"s": "é\U0001f600", "i": -(2**63), "f": -1e300, "mixed": "x", "b": False}
    assert [type(v) for v in got[0].values()] == [str, int, float, int, bool, int, dict, str]
    assert got[0]["nl"] == "a\nb"


def test_many_shapes_and_random_access_agree_with_reading_everything() -> None:
    """Past 256 shapes a shape code does not fit a byte: the other random-access path."""
    for shapes in (3, 300):
        fields = [{f"k{i % shapes}": i, "common": str(i)} for i in range(900)]
        b = wb.Batch(_batch(fields))
        every = [r.fields for r in b.records()]
        assert every == fields
        picks = [899, 0, 450, 450, 17]
        assert [r.fields for r in wb.Batch(b.raw).records(picks)] == [fields[i] for i in picks]


def test_surrogates_in_field_strings_survive() -> None:
    data = _batch([{"s": "a\udcffb"}, {"s": "\ud800"}])
    assert [r.fields["s"] for r in wb.Batch(data).records()] == ["a\udcffb", "\ud800"]


_GOOD = _batch(
    [{"s": f"v{i}", "n": i, "any": [i], "t": f"{i}"} if i % 3 else {"s": "x\ny"} for i in range(30)]
)


def _col(section: _fields._Section, name: str) -> int:
    return section.keys.index(name)


def _set_column(section: _fields._Section, name: str, **kw: Any) -> _fields._Section:
    cols = list(section.columns)
    k = _col(section, name)
    cols[k] = msgspec.structs.replace(cols[k], **kw)
    return msgspec.structs.replace(section, columns=cols)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s: _set_column(s, "s", data=b"\xff" + _set_data(s, "s")), "field column 's'"),
        (lambda s: _set_column(s, "s", data=_set_data(s, "s") + b"x"), "lengths do not add up"),
        (lambda s: _set_column(s, "any", count=3), "has 3 values"),
        (lambda s: _set_column(s, "t", data=_set_data(s, "t") + b"\n"), "not as many lines"),
        (lambda s: _set_column(s, "t", data=b"\xc3" + _set_data(s, "t")), "field column 't'"),
        (lambda s: _set_column(s, "t", lengths=b"\0" * 4), "lengths it cannot use"),
        (lambda s: _set_column(s, "any", data=msgspec.msgpack.encode([1, 2])), "holds 2 of"),
        (lambda s: _set_column(s, "any", data=b"\xc1"), "field column 'any'"),
        (lambda s: _set_column(s, "n", data=b"\0" * 3), "has 3 bytes"),
        (lambda s: _set_column(s, "n", kind=9), "unknown kind"),
        (lambda s: msgspec.structs.replace(s, keys=["s", "s", "any"]), "names a key twice"),
        (lambda s: msgspec.structs.replace(s, shapes=[[0, 0], *s.shapes[1:]]), "not a set"),
        (lambda s: msgspec.structs.replace(s, shapes=[[7], *s.shapes[1:]]), "not a set"),
        (lambda s: msgspec.structs.replace(s, shapes=s.shapes[:1]), "points past the shapes"),
        (lambda s: msgspec.structs.replace(s, shape=s.shape[:-1]), "has"),
        (lambda s: msgspec.structs.replace(s, columns=s.columns[:-1]), "field columns for"),
    ],
)
def test_validate_refuses_every_damaged_structure(
    change: Callable[[_fields._Section], _fields._Section], why: str
) -> None:
    bad = _replace_fields(_GOOD, change)
    with pytest.raises(CorruptBatch, match=why):
        wb.Batch(bad).validate()
    with pytest.raises(CorruptBatch):
        wb.Batch(bad).records()


def _set_data(section: _fields._Section, name: str) -> bytes:
    return section.columns[_col(section, name)].data


def test_the_unchanged_section_passes() -> None:
    same = _replace_fields(_GOOD, lambda s: s)
    wb.Batch(same).validate()
    assert wb.read(same) == wb.read(_GOOD)


def test_a_flat_batch_with_an_extra_newline_is_refused() -> None:
    """``validate`` counts newlines instead of splitting: the count must be exact."""
    data = bytearray(wb.build([Record(ts=0, line="a"), Record(ts=0, line="b")]))
    h = wb.read_header(data)
    raw = b"a\nb\nc"
    z = zstandard.ZstdCompressor(write_content_size=True).compress(raw)
    start = wb.HEADER_SIZE + h.meta_len + h.cols_clen
    data[start : start + h.lines_clen] = z
    struct.pack_into(">II", data, 86, len(z), len(raw))
    struct.pack_into(">I", data, 16, len(data) - wb.PREFIX_SIZE)
    struct.pack_into(">I", data, 20, zlib.crc32(bytes(data[24:])))
    with pytest.raises(CorruptBatch, match="3 lines in the blob for 2 records"):
        wb.Batch(bytes(data)).validate()


# -- FieldColumns: the columnar form the parsers and runs hand over ----------------------------

_dicts = st.lists(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "é"]),
        st.one_of(st.integers(), st.text(max_size=3), st.none()),
        max_size=3,
    ),
    max_size=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_dicts, _dicts, st.dictionaries(st.sampled_from(["a", "x"]), st.integers(), max_size=2))
def test_field_columns_operations_match_the_same_on_dicts(
    first: list[dict[str, Any]], second: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    a, b = FieldColumns.from_dicts(first), FieldColumns.from_dicts(second)
    assert a.dicts() == first
    joined = FieldColumns.concat([a, b])
    assert joined.dicts() == first + second
    assert [list(d) for d in joined.dicts()] == [list(d) for d in first + second]
    merged = joined.with_extra(extra).dicts()
    assert merged == [{**d, **extra} for d in first + second]
    assert [list(d) for d in merged] == [list({**d, **extra}) for d in first + second]
    for k in range(len(first) + 1):
        head, rest = a.split(k)
        assert head.dicts() == first[:k] and rest.dicts() == first[k:]
    if first:
        assert FieldColumns.constant(first[0], 3).dicts() == [first[0]] * 3


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=30))
def test_a_section_from_columns_equals_one_from_dicts(recs: list[Record]) -> None:
    w1, w2 = _fields.FieldsWriter(), _fields.FieldsWriter()
    w1.add_dicts([r.fields for r in recs])
    w2.add_columns(FieldColumns.from_dicts([r.fields for r in recs]))
    assert w1.encode() == w2.encode()
