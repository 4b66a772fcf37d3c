"""How ``wharf grep`` and ``wharf tail`` print: formats, templates, colour on a terminal (a real
pseudo-terminal), ``NO_COLOR``, plain output in pipes, and the progress line."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.render import HOST_PALETTE, host_style, render_logfmt, render_template
from collector.storage import Store, TopicConfig
from tests.cli.helpers import HOST, LOGS
from tests.harness import WHARF, CollectorProcess, LiveServer, clean_env
from wharf import batch as wb
from wharf.api import Hit
from wharf.record import Record

AUTH = LOGS / "auth.log"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def in_terminal(
    args: list[str], env: dict[str, str], *, stdout_tty: bool = True, stderr_tty: bool = False
) -> tuple[str, str, int]:
    """Run ``wharf`` with stdout or stderr on a pseudo-terminal and the other one in a file;
    returns (stdout, stderr, status)."""
    master, slave = pty.openpty()
    env = {**env, "TERM": "xterm-256color", "COLUMNS": "1000"}
    with tempfile.TemporaryFile() as other:
        with subprocess.Popen(
            [WHARF, *args],
            stdout=slave if stdout_tty else other,
            stderr=slave if stderr_tty else other,
            stdin=subprocess.DEVNULL,
            env=env,
        ) as proc:
            os.close(slave)
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            os.close(master)
            status = proc.wait(60)
        other.seek(0)
        filed = other.read().decode()
    tty = b"".join(chunks).decode().replace("\r\n", "\n")
    return (tty, filed, status) if stdout_tty else (filed, tty, status)


def test_piped_output_is_raw_by_default_and_plain_text_on_request(
    shipped: CollectorProcess,
) -> None:
    raw = shipped.wharf("grep", "-t", "auth", "-F", "Invalid user admin")
    lines = [x for x in AUTH.read_text().splitlines() if "Invalid user admin" in x]
    assert raw.stdout.splitlines() == lines
    text = shipped.wharf("grep", "-t", "auth", "-F", "-o", "text", "Invalid user admin")
    assert text.stdout.splitlines() == [f"{HOST} {AUTH}: {x}" for x in lines]
    ctx = shipped.wharf("grep", "-t", "auth", "-o", "text", "-m", "1", "-B", "1", "Invalid user")
    before, match = ctx.stdout.splitlines()
    assert before.startswith(f"{HOST} {AUTH}- ") and match.startswith(f"{HOST} {AUTH}: ")


def test_colour_on_a_terminal(shipped: CollectorProcess) -> None:
    args = ["grep", "-t", "auth", "-F", "-i", "invalid USER admin"]
    out, err, status = in_terminal(args, shipped.env)
    assert status == 0, err
    first = out.splitlines()[0]
    assert ANSI.sub("", first).startswith(f"{HOST} {AUTH}: ")
    # the match is highlighted as grep --color does, case-insensitively
    assert "\x1b[1;31mInvalid user admin\x1b[0m" in first
    again, _, _ = in_terminal(args, shipped.env)
    assert again.splitlines()[0] == first  # the same host colour every run
    plain, _, _ = in_terminal(args, {**shipped.env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert plain.splitlines() == [ANSI.sub("", x) for x in out.splitlines()]


def test_host_colours_are_stable_and_spread() -> None:
    assert (
        host_style("web-3")
        == host_style("web-3")
        == HOST_PALETTE[__import__("zlib").crc32(b"web-3") % len(HOST_PALETTE)]
    )
    assert len({host_style(f"web-{i}") for i in range(40)}) >= len(HOST_PALETTE) // 2


def test_json_logfmt_and_templates(shipped: CollectorProcess) -> None:
    args = ["grep", "-t", "web", "-F", "-m", "3", "kibana-search"]
    records = [json.loads(x) for x in shipped.wharf(*args, "-o", "json").stdout.splitlines()]
    assert len(records) == 3
    assert {"topic", "partition", "offset", "ts", "host", "source", "line", "fields"} <= set(
        records[0]
    )
    logfmt = shipped.wharf(*args, "-o", "logfmt").stdout.splitlines()
    assert logfmt == [render_logfmt(Hit(**r)) for r in records]
    first = records[0]
    assert logfmt[0].startswith(
        f"ts=2015-05-17T10:05:03.000000000Z topic=web partition={first['partition']} "
        f"offset={first['offset']} host={HOST} source={LOGS}/"
    )
    assert " status=200 " in logfmt[0] and 'line="83.149.9.216 - - ' in logfmt[0]
    template = "{ts} {local} {host} {status} {method} {nope} {{x}} {line}"
    out = shipped.wharf(*args, "-o", template).stdout.splitlines()
    assert out == [render_template(template, Hit(**r)) for r in records]
    assert out[0].startswith("2015-05-17T10:05:03.000Z ")
    assert f" {HOST} 200 GET  {{x}} 83.149.9.216 " in out[0]
    tail = shipped.wharf("tail", "-t", "web", "-n", "3", "--no-follow", "-e", "kibana-search",
                         "-o", "{offset}:{status}")  # fmt: skip
    every = shipped.wharf("grep", "-t", "web", "-F", "kibana-search", "-o", "json")
    newest = [json.loads(x) for x in every.stdout.splitlines()][-3:]
    assert tail.stdout.splitlines() == [f"{r['offset']}:{r['fields']['status']}" for r in newest]


def test_logfmt_quotes_what_needs_it() -> None:
    rec = Hit(topic="app", partition=0, offset=7, ts=1_700_000_000_123_000_000, host="h",
              source="/x y", level="warn", line='a "b" c',
              fields={"n": 1, "http": {"path": "/a=b"}, "host": "peer", "e": ""})  # fmt: skip
    assert render_logfmt(rec) == (
        'ts=2023-11-14T22:13:20.123000000Z topic=app partition=0 offset=7 host=h source="/x y" '
        'level=warn n=1 http.path="/a=b" fields.host=peer e="" line="a \\"b\\" c"'
    )


def test_levels_on_the_command_line(shipped: CollectorProcess) -> None:
    # kafka_controller.log: WARN lines and nothing more severe
    got = shipped.wharf("grep", "-t", "kafka", "--level", "warn+", "-c", "")
    theirs = sum(1 for x in (LOGS / "kafka_controller.log").read_text().splitlines()
                 if "] WARN " in x)  # fmt: skip
    assert (got.returncode, got.stdout) == (0, f"{theirs}\n")
    two = shipped.wharf("grep", "-t", "kafka", "--level", "warn", "--level", "info", "-c", "")
    assert int(two.stdout) == theirs + sum(
        1 for x in (LOGS / "kafka_controller.log").read_text().splitlines() if "] INFO " in x
    )
    tail = shipped.wharf("tail", "-t", "kafka", "--level", "warn", "-n", "2", "--no-follow")
    assert all("] WARN " in x for x in tail.stdout.splitlines()) and tail.stdout.count("\n") == 2
    bad = shipped.wharf("grep", "-t", "kafka", "--level", "loud", "x")
    assert bad.returncode == 2 and "unknown level 'loud'" in bad.stderr


@pytest.fixture(scope="module")
def slow_progress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An API that sends a progress line before every batch it reads (``progress_s=0``)."""
    lines = AUTH.read_text().splitlines()
    with Store(tmp_path_factory.mktemp("progress") / "data") as store:
        store.create_topic("auth", TopicConfig(partitions=1))
        for i in range(0, len(lines), 500):
            store.append("auth", 0, wb.build([Record(ts=i + j, line=x, host="h", source="a")
                                              for j, x in enumerate(lines[i : i + 500])]))  # fmt: skip
        with LiveServer(store, progress_s=0.0) as srv:
            yield srv


@pytest.mark.parametrize("extra", [[], ["-c"], ["-l"], ["-C", "1"]])
def test_progress_line_on_a_terminal_only(slow_progress: LiveServer, extra: list[str]) -> None:
    env = clean_env(WHARF_HTTP=slow_progress.url)
    args = ["grep", "-t", "auth", *extra, "Invalid user admin"]
    out, err, status = in_terminal(args, env, stdout_tty=False, stderr_tty=True)
    assert status == 0
    assert "wharf: scanned " in err and " matches, " in err and " MB of " in err
    assert err.endswith("\r\x1b[K")  # cleared at the end: the terminal is left clean
    piped = subprocess.run([WHARF, *args], capture_output=True, text=True, env=env, check=False)
    assert piped.stdout == out and piped.stderr == ""  # no terminal: no progress line


def test_tail_prints_the_newest_in_every_format(tmp_path: Path) -> None:
    c = CollectorProcess(tmp_path / "data").start()
    try:
        c.ship("app", "auto", "-", stdin="".join(f"level=info n={i} msg=hello\n" for i in range(5)))
        got = c.wharf("tail", "-t", "app", "-n", "2", "--no-follow", "-o", "{n} {level}")
        assert got.stdout == "3 info\n4 info\n"
        got = c.wharf("tail", "-t", "app", "-n", "1", "--no-follow", "--host", "nobody-*")
        assert (got.returncode, got.stdout) == (0, "")
        bad = c.wharf("tail", "-t", "app", "-o", "yaml", "--no-follow")
        assert bad.returncode == 2 and "unknown output format 'yaml'" in bad.stderr
    finally:
        assert c.stop() == 0
