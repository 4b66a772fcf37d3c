"""The nginx parser against VRL's vectors.

Vectors: ``../shared/data/vectors/clf.jsonl``, the ``parse_nginx_log`` cases of
vectordotdev/vrl @ eae43fef (``src/stdlib/parse_nginx_log.rs``; MPL-2.0): formats
``combined``, ``main``, ``ingress_upstreaminfo`` and ``error``.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import pytest

from parsers import get_parser
from parsers.nginx import NginxParser
from tests.parsers._vectors import params
from tests.parsers.test_clf import check_fields, expected_ns


def _is_nginx_case(case: dict[str, Any]) -> bool:
    return bool(case["function"] == "parse_nginx_log")


@pytest.mark.parametrize("case", params("clf", where=_is_nginx_case))
def test_vector(case: dict[str, Any]) -> None:
    assert not case["options"], f"vector option not mapped: {case['options']}"
    parsed = NginxParser(case["format"]).parse(case["input"])
    if case["valid"]:
        check_fields(parsed, case["expected"])
    else:
        assert parsed.error is not None
        assert parsed.fields == {}


# VRL's combined names -> nginx variable names, which ``auto`` uses for every access line.
_MAIN_NAMES = {
    "client": "remote_addr",
    "user": "remote_user",
    "size": "body_bytes_size",
    "referer": "http_referer",
    "agent": "http_user_agent",
    "compression": "http_x_forwarded_for",
}


@pytest.mark.parametrize("case", params("clf", where=lambda c: _is_nginx_case(c) and c["valid"]))
def test_vector_auto(case: dict[str, Any]) -> None:
    """``auto`` reads every valid line, with one naming: nginx's variable names."""
    parsed = NginxParser().parse(case["input"])
    expected = dict(case["expected"])
    if case["format"] == "combined":
        expected = {_MAIN_NAMES.get(k, k): v for k, v in expected.items()}
        # main's reading: "-" in the referer/agent/forwarded-for fields is absent.
        expected = {k: v for k, v in expected.items() if v != "-"}
    check_fields(parsed, expected)


def test_error_level_and_zone() -> None:
    line = "2019/10/10 12:00:00 [warn] 123#456: *789 something odd, client: 1.2.3.4"
    parsed = NginxParser("error", tz=timezone(timedelta(hours=2))).parse(line)
    assert parsed.level == "warn"
    assert parsed.ts == expected_ns({"$timestamp": "2019-10-10T10:00:00Z"})
    assert parsed.fields == {
        "severity": "warn",
        "pid": 123,
        "tid": 456,
        "cid": 789,
        "message": "something odd",
        "client": "1.2.3.4",
    }
    assert NginxParser().parse(line).level == "warn"
    assert NginxParser("error").parse("2019/10/10 25:00:00 [warn] 1#1: x").error is not None


def test_auto_empty_agent_and_rejects() -> None:
    parser = NginxParser()
    parsed = parser.parse('1.2.3.4 - - [04/Oct/2022:04:34:49 +0000] "" 400 0 "" ""')
    assert parsed.fields == {
        "remote_addr": "1.2.3.4",
        "request": "",
        "status": 400,
        "body_bytes_size": 0,
        "http_referer": "",
        "http_user_agent": "",
    }
    assert parser.parse("hello").error is not None
    assert parser.parse("").error is not None


def test_registry() -> None:
    assert isinstance(get_parser("nginx", format="error"), NginxParser)
    with pytest.raises(ValueError, match="unknown nginx format"):
        NginxParser("apache")  # type: ignore[arg-type]
