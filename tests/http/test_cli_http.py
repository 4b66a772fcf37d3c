"""``wharf grep``, ``wharf tail`` and ``wharf topics`` as real child processes against a live
collector API, compared with GNU grep and tail on the same files."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from collector.storage import Store
from tests.harness import LiveServer, gnu_grep, reserve_port
from tests.http.conftest import embedded_only
from tests.http.live import LOGS, damage_middle, log_lines
from wharf import batch as wb
from wharf.record import Record

WHARF = Path(sys.executable).with_name("wharf")
APACHE = LOGS / "apache_combined.log"
AUTH = LOGS / "auth.log"


def wharf(
    srv: LiveServer | str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_HTTP"] = srv if isinstance(srv, str) else srv.url
    env["LC_ALL"] = "C.UTF-8"
    return subprocess.run(
        [str(WHARF), *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
        check=False,
    )


class Lines:
    """A child's stdout, line by line, with a generous deadline so a broken tail fails the test
    instead of hanging it (not a speed assertion)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._queue: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        threading.Thread(target=lambda: [self._queue.put(x) for x in stdout], daemon=True).start()

    def next(self) -> str:
        try:
            return self._queue.get(timeout=30)
        except queue.Empty:
            raise AssertionError("no line from wharf tail within 30 s") from None


def assert_one_error_line(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("wharf: "), done.stderr
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["-F", "-c", "GET /presentations"],
        ["-c", "kibana"],
        ["-i", "-c", "googlebot"],
        ["-F", "-i", "-c", "MOZILLA/5.0 (X11"],
        ["-v", "-c", "GET"],
        ["-c", r"\" 50[0-9] "],
        ["-F", "-c", "no such text anywhere"],
    ],
)
def test_grep_counts_and_exit_codes_match_gnu_grep(loaded: LiveServer, flags: list[str]) -> None:
    ours = wharf(loaded, "grep", "-t", "web", *flags)
    theirs = gnu_grep(*flags, str(APACHE))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


@pytest.mark.parametrize(
    "flags", [["-F", "kibana-search"], ["-i", "SAFARI/534"], ["-v", "Mozilla"]]
)
def test_grep_prints_the_lines_grep_prints(loaded: LiveServer, flags: list[str]) -> None:
    ours = wharf(loaded, "grep", "-t", "web", *flags)
    theirs = gnu_grep(*flags, str(APACHE))
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())


def test_grep_json_output(loaded: LiveServer) -> None:
    done = wharf(loaded, "grep", "-t", "web", "-o", "json", "--limit", "3", "kibana")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 3
    for r in records:
        assert {"topic", "partition", "offset", "ts", "host", "source", "line", "fields"} <= set(r)
        assert "kibana" in r["line"]
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)


def test_grep_time_range_and_where(loaded: LiveServer, apache: list[Record]) -> None:
    # 17/May/2015:10:05:00 .. 17/May/2015:11:00:00 UTC
    done = wharf(loaded, "grep", "-t", "web", "-c", "--from", "2015-05-17T10:05:00Z",
                 "--to", "2015-05-17T11:00:00+00:00", "")  # fmt: skip
    lo, hi = 1431857100 * 10**9, 1431860400 * 10**9
    assert done.stdout.strip() == str(sum(1 for r in apache if lo <= r.ts < hi)), done.stderr
    done = wharf(loaded, "grep", "-t", "web", "-c", "--where", "status>=500", "")
    assert done.stdout.strip() == str(sum(1 for r in apache if r.fields.get("status", 0) >= 500))
    done = wharf(loaded, "grep", "-t", "web", "-c", "--host", "web-1", "--host", "web-2", "GET")
    expected = sum(1 for r in apache if r.host in ("web-1", "web-2") and "GET" in r.line)
    assert done.stdout.strip() == str(expected)
    done = wharf(loaded, "grep", "-t", "web", "-c", "--since", "15m", "")  # 2015 is long ago
    assert (done.returncode, done.stdout) == (1, "0\n")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["grep", "-t", "web", "(unclosed"], "missing )"),
        (["grep", "-t", "nope", "x"], "no topic 'nope'"),
        (["grep", "-t", "web", "x", "--since", "banana"], "invalid duration 'banana'"),
        (["grep", "-t", "web", "x", "--from", "yesterday-ish"], "invalid time 'yesterday-ish'"),
        (
            ["grep", "-t", "web", "x", "--from", "2015-05-18", "--to", "2015-05-17"],
            "empty time range",
        ),
        (["grep", "-t", "web", "x", "--where", "status>="], "at column 9"),
        (["grep", "-t", "web", "x", "-o", "yaml"], "unknown output format"),
        (["grep", "-t", "web", "x", "--limit", "0"], "--limit"),
        (["tail", "-t", "nope", "--no-follow"], "no topic 'nope'"),
        (["topics", "describe", "nope"], "no topic 'nope'"),
    ],
)
def test_errors_are_one_line_exit_2(loaded: LiveServer, args: list[str], fragment: str) -> None:
    assert_one_error_line(wharf(loaded, *args), fragment)


def test_unreachable_collector() -> None:
    done = wharf("http://127.0.0.1:9", "grep", "x")
    assert_one_error_line(done, "cannot reach the collector at http://127.0.0.1:9")
    assert_one_error_line(wharf("ftp://x", "topics", "list"), "must look like http://HOST:PORT")


def test_tail_no_follow_equals_tail(loaded: LiveServer) -> None:
    done = wharf(loaded, "tail", "-t", "auth", "-n", "7", "--no-follow")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == log_lines("auth.log")[-7:]
    done = wharf(loaded, "tail", "-t", "auth", "-n", "3", "--no-follow", "-e", "sshd", "-o", "json")
    lines = [json.loads(x)["line"] for x in done.stdout.splitlines()]
    assert lines == [x for x in log_lines("auth.log") if "sshd" in x][-3:]


def test_tail_follows_new_records(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    store.append("app", 0, wb.build([Record(ts=1, line="before")]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_HTTP"] = server.url
    with subprocess.Popen(
        [str(WHARF), "tail", "-t", "app", "-n", "1", "-e", "keep"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:  # fmt: skip
        try:
            lines = Lines(proc)
            store.append(
                "app", 0, wb.build([Record(ts=2, line="drop me"), Record(ts=3, line="keep me")])
            )
            # -e keep: "before" and "drop me" never show (whether "keep me" arrives live or
            # as the one record of -n 1 depends on when the child connects; both are right)
            assert lines.next() == "keep me\n"
        finally:
            proc.terminate()
            proc.wait(30)


def test_tail_reconnects_after_a_collector_restart(store: Store) -> None:
    """The stream breaks, the CLI retries, and resumes from its last position: the record
    written while the collector was down arrives once, and nothing is repeated."""
    store.create_topic("app")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    # The CLI keeps its URL: the second server must come up at the first one's port, which
    # nothing else may take while it is down (a reserved port, see harness.ports).
    port = reserve_port().port
    with LiveServer(store, heartbeat_s=0.2, port=port) as first:
        env["WHARF_HTTP"] = first.url
        store.append("app", 0, wb.build([Record(ts=1, line="one")]))
        proc = subprocess.Popen(
            [str(WHARF), "tail", "-t", "app", "-n", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        lines = Lines(proc)
        assert lines.next() == "one\n"
    try:
        store.append("app", 0, wb.build([Record(ts=2, line="two")]))  # nobody listening
        with LiveServer(store, heartbeat_s=0.2, port=port):
            assert lines.next() == "two\n"
            store.append("app", 0, wb.build([Record(ts=3, line="three")]))
            assert lines.next() == "three\n"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "reconnecting" in err


def test_topics_over_http(server: LiveServer, store: Store) -> None:
    done = wharf(server, "topics", "create", "nginx", "--partitions", "3", "--retention", "7d")
    assert done.returncode == 0, done.stderr
    assert store.describe("nginx").config.retention_ms == 7 * 86_400_000
    store.append("nginx", 1, wb.build([Record(ts=5, line="x")]))
    done = wharf(server, "topics", "describe", "nginx", "-o", "json")
    info: dict[str, Any] = json.loads(done.stdout)
    assert info["name"] == "nginx" and len(info["partitions"]) == 3
    assert info["partitions"][1]["end_offset"] == 1
    done = wharf(server, "topics", "list")  # piped: one JSON object per topic
    assert [json.loads(x)["name"] for x in done.stdout.splitlines()] == ["nginx"]
    assert_one_error_line(wharf(server, "topics", "create", "nginx"), "exists already")
    assert_one_error_line(
        wharf(server, "topics", "create", "x", "--retention", "soon"), "invalid duration"
    )


def test_topics_offline_data_dir(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        store.create_topic("app")
        store.append("app", 0, wb.build([Record(ts=5, line="x")]))
    done = wharf(
        "http://127.0.0.1:9", "topics", "describe", "app", "--data-dir", str(tmp_path / "data")
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["partitions"][0]["end_offset"] == 1
    done = wharf("http://127.0.0.1:9", "topics", "list", "--data-dir", str(tmp_path))
    assert_one_error_line(done, "is not a Wharf data directory")


@embedded_only
def test_grep_warns_about_damaged_batches(server: LiveServer, store: Store) -> None:
    store.create_topic("app")
    for b in range(3):
        store.append("app", 0, wb.build([Record(ts=b, line=f"batch {b}")]))
    damage_middle(store, "app")
    done = wharf(server, "grep", "-t", "app", "batch")
    # like GNU grep after a read error: what matched is printed, and the status says 2
    assert (done.returncode, done.stdout) == (2, "batch 0\nbatch 2\n")
    assert done.stderr.startswith("wharf: warning: 1 damaged batch(es) were skipped: ")


def test_topics_compact_over_http(server: LiveServer, store: Store) -> None:
    done = wharf(
        server, "topics", "create", "app", "--segment-bytes", "65536", "--segment-age", "1h"
    )
    assert done.returncode == 0, done.stderr
    config = store.describe("app").config
    assert (config.segment_bytes, config.segment_ms) == (65536, 3_600_000)
    for b in range(4):
        lines = [f"req id={b:02d}{n:05d} took {n % 97} ms" for n in range(3000)]
        store.append("app", 0, wb.build([Record(ts=n, line=line) for n, line in enumerate(lines)]))
    if not isinstance(store, Store):  # the cluster: JetStream keeps its own files
        assert_one_error_line(wharf(server, "topics", "compact", "app"), "cannot compact")
        return
    done = wharf(server, "topics", "compact", "app", "-o", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["topic"] == "app" and result["batches"] == 4 and result["errors"] == []
    assert 0 < result["bytes_after"] < result["bytes_before"] and result["filter_bytes"] > 0
    info = json.loads(wharf(server, "topics", "describe", "app", "-o", "json").stdout)
    compaction = info["partitions"][0]["compaction"]
    assert compaction["segments"] == result["segments"] > 0
    assert compaction["bytes_after"] == result["bytes_after"]
    done = wharf(server, "grep", "-t", "app", "-c", "-F", "=0201234 ")
    assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr
    again = wharf(server, "topics", "compact", "app", "-o", "table")
    assert again.returncode == 0 and "0 segment(s)" in again.stdout, again.stdout
    assert_one_error_line(wharf(server, "topics", "compact", "nope"), "nope")
