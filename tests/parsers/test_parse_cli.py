"""``wharf parse``: through the real ``wharf`` app, with real files in tmp_path.

Sample lines are from ``../shared/data/logs/auth.log`` (elastic/examples @ 6d86454e, Apache-2.0).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from tests.parsers._vectors import LOGS_DIR

runner = CliRunner()


def _records(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def test_json_lines_from_a_file(tmp_path: Path) -> None:
    sample = (LOGS_DIR / "auth.log").read_bytes().splitlines(keepends=True)[:3]
    path = tmp_path / "auth.log"
    # CRLF on one line and no final newline: both must be handled.
    path.write_bytes(sample[0] + sample[1].replace(b"\n", b"\r\n") + sample[2].rstrip(b"\n"))
    before = time.time_ns()
    result = runner.invoke(app, ["parse", "--parser", "syslog", "-o", "json", str(path)])
    assert result.exit_code == 0, result.output
    records = _records(result.stdout)
    assert [r["line"] for r in records] == [s.rstrip(b"\r\n").decode() for s in sample]
    assert [r["offset"] for r in records] == [
        0,
        len(sample[0]),
        len(sample[0]) + len(sample[1]) + 1,
    ]
    for r in records:
        assert r["source"] == str(path)
        assert r["host"] == socket.gethostname()
        assert r["fields"]["hostname"] == "ip-10-77-20-248"
        assert r["error"] is None
        # Parsed from the line (March 27th), not the read time.
        assert r["ts"] < before


def test_stdin_json_lines_and_read_time(tmp_path: Path) -> None:
    before = time.time_ns()
    result = runner.invoke(
        app,
        ["parse", "-p", "logfmt", "-o", "json", "-"],
        input=b'level=warn msg="a b"\nnot=a=pair\n\xff=1\n',
    )
    # One line does not parse: exit status 1, like grep's "no match", and its error shown.
    assert result.exit_code == 1, result.output
    first, second, third = _records(result.stdout)
    assert first["fields"] == {"level": "warn", "msg": "a b"}
    assert first["level"] == "warn"
    assert first["source"] == "-"
    assert first["ts"] >= before  # no timestamp in the line: the read time
    assert second["fields"] == {}
    assert "unexpected '='" in second["error"]
    assert third["line"] == "\ufffd=1"  # invalid UTF-8 replaced


def test_parser_options() -> None:
    line = b"<34>1 2003-10-11T22:14:15.003Z host app - - - hi\n"
    result = runner.invoke(
        app, ["parse", "-p", "syslog", "--option", "mode=rfc3164", "-o", "json"], input=line
    )
    assert result.exit_code == 1
    result = runner.invoke(
        app, ["parse", "-p", "syslog", "--option", "mode=rfc5424", "-o", "json"], input=line
    )
    assert result.exit_code == 0, result.output
    assert _records(result.stdout)[0]["ts"] == 1065910455_003_000_000


def test_table_output() -> None:
    result = runner.invoke(
        app, ["parse", "-p", "json", "-o", "table"], input=b'{"level":"error"}\n'
    )
    assert result.exit_code == 0, result.output
    assert "error" in result.stdout
    assert "{" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["parse", "-p", "nope", "-"], "unknown parser 'nope'"),
        (["parse", "-p", "raw", "--option", "x=1", "-"], "cannot build parser 'raw'"),
        (["parse", "-p", "syslog", "--option", "mode=x", "-"], "syslog mode must be one of"),
        (["parse", "-p", "raw", "--option", "novalue", "-"], "--option expects key=value"),
        (["parse", "-p", "json", "--option", "tz=5", "-"], "time zone"),
        (["parse", "-p", "json", "--option", "tz=Mars/Base", "-"], "unknown time zone"),
        (["parse", "-p", "raw", "-o", "xml", "-"], "unknown output format 'xml'"),
        (["parse", "-p", "raw", "/nonexistent/file.log"], "cannot read /nonexistent/file.log"),
    ],
)
def test_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args, input=b"x\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("wharf parse: ")
    assert message in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_directory_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["parse", "-p", "raw", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("wharf parse: cannot read")
