"""The error table: unique stable codes, HTTP statuses, retriable flags, and rebuilding typed
errors from what travels (NACK codes, HTTP error bodies)."""

from __future__ import annotations

import inspect
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wharf import errors as we
from wharf.errors import (
    TABLE,
    ErrorBody,
    WharfError,
    code_of,
    error_body,
    error_from,
    http_headers,
    http_status,
)

CLASSES = [row[0] for row in TABLE]

# The whole vocabulary, pinned: peers, dashboards and scripts match on these codes, so changing
# one here must be a deliberate act (add a code; never rename one).
PINNED = {
    "internal_error": (500, False),
    "invalid_request": (400, False),
    "invalid_argument": (400, False),
    "invalid_topic": (400, False),
    "unknown_topic": (404, False),
    "unknown_group": (404, False),
    "topic_exists": (409, False),
    "offset_out_of_range": (416, False),
    "unauthorized": (401, False),
    "forbidden": (403, False),
    "not_found": (404, False),
    "method_not_allowed": (405, False),
    "local_protocol_error": (500, False),
    "remote_error": (500, False),
    "corrupt_batch": (500, False),
    "too_large": (500, False),
    "protocol_error": (400, False),
    "bad_frame": (400, False),
    "unexpected_frame": (400, False),
    "frame_too_large": (413, False),
    "unsupported_version": (400, False),
    "truncated": (400, True),
    "closed": (400, True),
    "handshake_timeout": (408, True),
    "frame_timeout": (408, True),
    "idle_timeout": (408, True),
    "store_error": (503, True),
    "store_unavailable": (503, True),
    "unavailable": (503, True),
    "too_many_connections": (503, True),
}


def test_every_class_has_a_unique_snake_case_code() -> None:
    codes = [row[1] for row in TABLE]
    assert len(set(codes)) == len(codes)
    assert len(set(CLASSES)) == len(CLASSES)
    for cls, code, status, retriable in TABLE:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code), code
        assert (cls.code, cls.status, cls.retriable) == (code, status, retriable)
        assert cls.__doc__, f"{cls.__name__} has no docstring"


def test_every_error_class_of_the_core_is_in_the_table() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(we, inspect.isclass)
        if issubclass(obj, WharfError) and obj.__module__ == we.__name__
    }
    assert defined - set(CLASSES) == {we.UnrecognizedError}  # its code is whatever came in


def test_the_vocabulary_is_stable() -> None:
    assert {code: (status, retriable) for _, code, status, retriable in TABLE} == PINNED


@pytest.mark.parametrize("cls", CLASSES)
def test_error_from_rebuilds_the_same_class_and_message(cls: type[WharfError]) -> None:
    original = cls(f"{cls.__name__}: something about 'topic-1'")
    rebuilt = error_from(code_of(original), str(original))
    assert type(rebuilt) is cls
    assert str(rebuilt) == str(original)
    assert code_of(rebuilt) == code_of(original)
    assert rebuilt.retriable is original.retriable
    assert http_status(rebuilt) == http_status(original)
    # The table decides for a code it knows, whatever flag or status came with it.
    assert error_from(cls.code, "m", retriable=not cls.retriable, status=299).retriable is (
        cls.retriable
    )


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (we.InvalidArgument("x"), 400),
        (we.InvalidTopicName("x"), 400),
        (we.UnknownTopic("x"), 404),
        (we.UnknownGroup("x"), 404),
        (we.TopicExists("x"), 409),
        (we.OffsetOutOfRange("x"), 416),
        (we.Unauthorized("x"), 401),
        (we.Forbidden("x"), 403),
        (we.NotFound("x"), 404),
        (we.MethodNotAllowed("x"), 405),
        (we.StoreClosed("x"), 503),
        (we.StoreError("x"), 503),
        (we.RemoteError("x"), 500),
        (we.CorruptBatch("x", "seg 3"), 500),
        (we.Unavailable("x"), 503),
        (ValueError("not ours"), 500),
        (RuntimeError("not ours"), 500),
    ],
)
def test_http_status(exc: BaseException, status: int) -> None:
    assert http_status(exc) == status


def test_classes_outside_the_table_travel_as_their_nearest_ancestor() -> None:
    class WhereLike(we.InvalidArgument):
        """Like the collector's ``WhereError``."""

    class Retriable(we.WharfError):
        """A client's own class that says so itself."""

        retriable = True

    exc = WhereLike("bad where clause")
    assert (code_of(exc), http_status(exc), exc.retriable) == ("invalid_argument", 400, False)
    assert type(error_from(code_of(exc), str(exc))) is we.InvalidArgument
    assert code_of(Retriable("x")) == "internal_error" and Retriable("x").retriable
    assert code_of(KeyError("x")) == "internal_error"


def test_unknown_groups_are_still_invalid_arguments() -> None:
    assert issubclass(we.UnknownGroup, we.InvalidArgument)
    assert issubclass(we.UnknownGroup, ValueError)


def test_an_unknown_code_becomes_a_generic_error_carrying_it() -> None:
    err = error_from("quota_exceeded", "slow down", retriable=True, status=429)
    assert isinstance(err, we.UnrecognizedError)
    assert (code_of(err), str(err), err.retriable, http_status(err)) == (
        "quota_exceeded",
        "slow down",
        True,
        429,
    )
    plain = error_from("quota_exceeded", "slow down")
    assert (plain.retriable, http_status(plain)) == (False, 500)
    # Passed on unchanged: the same code, flag and status again.
    again = error_from(code_of(err), str(err), retriable=err.retriable, status=http_status(err))
    assert (again.code, again.retriable, again.status) == (err.code, err.retriable, err.status)


def test_http_headers() -> None:
    assert http_headers(we.Unauthorized("who are you")) == {
        "WWW-Authenticate": 'Bearer realm="wharf"'
    }
    assert http_headers(we.Unauthorized("x", 'Bearer realm="other"')) == {
        "WWW-Authenticate": 'Bearer realm="other"'
    }
    assert http_headers(we.MethodNotAllowed("no", ["GET", "HEAD"])) == {"Allow": "GET, HEAD"}
    assert http_headers(we.MethodNotAllowed("no")) == {}
    assert http_headers(we.UnknownTopic("x")) == {}
    # Rebuilt from the wire, a 401 still has a challenge to send.
    assert "WWW-Authenticate" in http_headers(error_from("unauthorized", "who are you"))


def test_error_body_keeps_error_first_with_todays_message() -> None:
    exc = we.UnknownTopic("no topic 'nginx'")
    data = msgspec.json.encode(error_body(exc))
    assert data == b'{"error":"no topic \'nginx\'","code":"unknown_topic","retriable":false}'
    assert msgspec.json.decode(data)["error"] == str(exc)
    body = msgspec.json.decode(data, type=ErrorBody)
    rebuilt = body.to_error()
    assert type(rebuilt) is we.UnknownTopic and str(rebuilt) == str(exc)


def test_an_error_body_from_an_older_collector_still_decodes() -> None:
    body = msgspec.json.decode(b'{"error": "internal error: RuntimeError"}', type=ErrorBody)
    assert body == ErrorBody("internal error: RuntimeError")
    err = body.to_error(status=500)
    assert isinstance(err, we.UnrecognizedError) and str(err) == "internal error: RuntimeError"
    assert http_status(err) == 500


@given(
    st.sampled_from(CLASSES),
    st.text(max_size=200),
)
def test_error_body_json_round_trip(cls: type[WharfError], message: str) -> None:
    exc = cls(message)
    body = error_body(exc)
    decoded = msgspec.json.decode(msgspec.json.encode(body), type=ErrorBody)
    assert decoded == body == ErrorBody(str(exc), cls.code, cls.retriable)
    rebuilt = decoded.to_error()
    assert type(rebuilt) is cls and str(rebuilt) == str(exc)


@given(st.text(min_size=1, max_size=30), st.text(max_size=50), st.booleans())
def test_error_from_never_fails(code: str, message: str, retriable: bool) -> None:
    err = error_from(code, message, retriable=retriable)
    assert isinstance(err, WharfError) and str(err) == message
    assert code_of(err) == code
