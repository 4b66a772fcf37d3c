"""The JSON-lines parser.

Real data: ``../shared/data/logs/nginxplus_status.jsonl`` from elastic/examples @ 6d86454e
(``Common Data Formats/nginx_json_plus_logs``, Apache-2.0).
"""

from __future__ import annotations

import json

import pytest

from parsers import get_parser
from parsers.json import JsonParser
from tests.parsers._vectors import LOGS_DIR


def test_object_fields_ts_level() -> None:
    got = JsonParser().parse(
        '{"ts":"2024-01-02T03:04:05.123456789Z","level":"WARN","msg":"x","n":1,"o":{"a":[1,2]}}'
    )
    assert got.error is None
    assert got.fields == {
        "ts": "2024-01-02T03:04:05.123456789Z",
        "level": "WARN",
        "msg": "x",
        "n": 1,
        "o": {"a": [1, 2]},
    }
    assert got.ts == 1704164645_123456789
    assert got.level == "warn"


@pytest.mark.parametrize(
    ("line", "ts"),
    [
        ('{"time": 1704164645}', 1704164645 * 10**9),
        ('{"timestamp": 1704164645123}', 1704164645123 * 10**6),
        ('{"@timestamp": "2024-01-02T03:04:05Z"}', 1704164645 * 10**9),
        ('{"time": "2024-01-02 03:04:05,250"}', 1704164645 * 10**9 + 250_000_000),
        ('{"ts": "not a time", "time": 1704164645.5}', 1704164645 * 10**9 + 500_000_000),
        ('{"t": 1704164645}', None),  # not one of the default keys
        ('{"ts": null}', None),
    ],
)
def test_time_keys(line: str, ts: int | None) -> None:
    assert JsonParser().parse(line).ts == ts


def test_time_key_option_and_tz() -> None:
    parser = get_parser("json", time_key="when", tz="Europe/Berlin")
    got = parser.parse('{"when": "2024-01-02 04:04:05", "ts": 1}')
    assert got.ts == 1704164645 * 10**9


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", "json: empty line"),
        ("   ", "json: empty line"),
        ("[1, 2]", "json: expected an object, got an array"),
        ('"text"', "json: expected an object, got a string"),
        ("42", "json: expected an object, got a number"),
        ("null", "json: expected an object, got null"),
        ('{"a": 1} trailing', "trailing characters (byte "),
        ('{"a": }', "malformed"),
        ('{"a": 1', "truncated"),
        ("{" * 100_000, "json: "),
        ('{"a":' * 5_000 + "1" + "}" * 5_000, "json: "),
    ],
)
def test_errors_keep_no_fields(line: str, error: str) -> None:
    got = JsonParser().parse(line)
    assert got.fields == {}
    assert got.ts is None
    assert got.error is not None
    assert error in got.error


def test_byte_order_mark_is_forgiven() -> None:
    assert JsonParser().parse('\ufeff{"a": 1}').fields == {"a": 1}
    assert JsonParser().parse("\ufeff" * 10_000 + "{}").error is not None  # one BOM only


def test_lone_surrogate_is_an_error_not_a_crash() -> None:
    got = JsonParser().parse('{"a": "\udcff"}')
    assert got.error is not None
    assert "UTF-8" in got.error


def test_nginxplus_status_log() -> None:
    """500 large real objects: all decode, equal to the stdlib's reading, with their ts."""
    parser = JsonParser()
    lines = (LOGS_DIR / "nginxplus_status.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 500
    for line in lines:
        got = parser.parse(line)
        assert got.error is None
        assert got.fields == json.loads(line)
        assert got.ts == got.fields["timestamp"] * 10**6  # epoch milliseconds
