"""Hypothesis strategies shared by the tests."""

from __future__ import annotations

from hypothesis import strategies as st

from wharf.record import LEVELS, Record

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(),
)
_fields = st.dictionaries(
    st.text(max_size=20),
    st.recursive(
        _json_scalar,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=8,
    ),
    max_size=6,
)

records = st.builds(
    Record,
    ts=st.integers(min_value=-(2**62), max_value=2**62),
    line=st.text(),
    host=st.text(max_size=30),
    source=st.text(max_size=60),
    fields=_fields,
    level=st.sampled_from((None, *LEVELS)),
    file_id=st.text(max_size=20),
    offset=st.integers(min_value=-1, max_value=2**62),
)
