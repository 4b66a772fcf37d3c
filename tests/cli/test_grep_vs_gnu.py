"""``wharf grep`` against GNU grep on the same real logs: lines, counts, context and exit codes.

Each topic holds one file shipped by ``wharf ship`` (one host, one source), so GNU grep on that
file is the reference. Ordering, said once: wharf prints matches in record-time order (merged
across hosts and partitions); grep prints file order. For ``auth.log`` the two agree (its
timestamps never go backwards, and equal times keep file order), so its output is compared
line for line. ``apache_combined.log`` logs requests when they end with the time they began,
and ``kafka_controller.log`` has continuation lines without a timestamp (they take the read
time), so for those the same lines are compared as multisets and wharf's order is checked to
be (time, offset). Context groups are built in file (offset) order per source, exactly as grep
builds them per file, so context output is compared line for line, ``--`` separators included.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.cli.conftest import SHIPPED
from tests.cli.helpers import HOST, LOGS
from tests.harness import CollectorProcess, gnu_grep
from tests.http.live import log_records
from wharf import batch as wb

FILE = {topic: LOGS / name for topic, (_, name) in SHIPPED.items()}

COUNTS = [
    ("web", ["-c", "kibana"]),
    ("web", ["-c", "-i", "googlebot"]),
    ("web", ["-c", "-v", "GET"]),
    ("web", ["-c", "-F", "GET /presentations"]),
    ("web", ["-c", "-E", '" 404 [0-9]+']),
    ("web", ["-c", "-F", "-i", "MOZILLA/5.0 (X11"]),
    ("web", ["-c", r"^83\.149\.9\.216 "]),
    ("web", ["-c", "-v", "-i", "mozilla"]),
    ("web", ["-c", "-F", "no such text anywhere"]),
    ("auth", ["-c", "Invalid user"]),
    ("auth", ["-c", "-E", "^Mar 27 13:0"]),
    ("auth", ["-c", "-i", "FAILED PASSWORD"]),
    ("auth", ["-c", "-E", r"port [0-9]+ ssh2$"]),
    ("kafka", ["-c", "ERROR"]),
    ("kafka", ["-c", "-v", "-F", "["]),
]


@pytest.mark.parametrize(("topic", "args"), COUNTS)
def test_counts_and_exit_codes(shipped: CollectorProcess, topic: str, args: list[str]) -> None:
    ours = shipped.wharf("grep", "-t", topic, *args[:-1], "--", args[-1])
    theirs = gnu_grep(*args[:-1], "--", args[-1], str(FILE[topic]))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


@pytest.mark.parametrize(
    "args",
    [["Invalid user"], ["-i", "-F", "PAM_UNIX"], ["-v", "sshd"], ["-E", "^Apr [0-9]+ 1[0-2]:"],
     ["-F", "no such text anywhere"], ["-v", ""]],
)  # fmt: skip
def test_lines_in_order_for_a_time_ordered_file(shipped: CollectorProcess, args: list[str]) -> None:
    ours = shipped.wharf("grep", "-t", "auth", *args[:-1], "--", args[-1])
    theirs = gnu_grep(*args[:-1], "--", args[-1], str(FILE["auth"]))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


@pytest.mark.parametrize(
    ("topic", "args"),
    [("web", ["-F", "Googlebot"]), ("web", ["-i", "safari/534"]), ("web", ["-v", "Mozilla"]),
     ("web", ["-E", '" (404|500) ']), ("kafka", ["-E", "WARN|ERROR"]), ("kafka", ["-v", "DEBUG"])],
)  # fmt: skip
def test_same_lines_in_time_order(shipped: CollectorProcess, topic: str, args: list[str]) -> None:
    ours = shipped.wharf("grep", "-t", topic, *args[:-1], "--", args[-1])
    theirs = gnu_grep(*args[:-1], "--", args[-1], str(FILE[topic]))
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
    as_json = shipped.wharf("grep", "-t", topic, "-o", "json", *args[:-1], "--", args[-1])
    records = [json.loads(x) for x in as_json.stdout.splitlines()]
    assert [r["line"] for r in records] == ours.stdout.splitlines()
    keys = [(r["ts"], r["offset"]) for r in records]
    assert keys == sorted(keys)
    assert {(r["host"], r["source"]) for r in records} == {(HOST, str(FILE[topic]))}


CONTEXT = [
    ("web", ["-C", "1", "kibana-search"]),
    ("web", ["-A", "2", "-B", "1", '" 404 ']),
    ("web", ["-B", "5", "Googlebot"]),  # dense: most groups join
    ("web", ["-A", "3", "-F", "-i", "WINDOWS NT 5.1"]),
    ("web", ["-C", "0", "bingbot"]),  # no context lines, but -- between non-adjacent matches
    ("web", ["-v", "-A", "1", "GET"]),  # context of non-matching lines
    ("web", ["-C", "2", "GET"]),  # everything matches or is context: one group
    ("web", ["-C", "4", "-F", "no such text anywhere"]),
    ("auth", ["-A", "2", "-B", "1", "Invalid user"]),
    ("auth", ["-C", "2", "-E", "^Mar 27 13:0"]),
    ("auth", ["-B", "3", "-F", "pam_unix(sshd:auth)"]),
    ("auth", ["-A", "10", "Received disconnect"]),
    ("kafka", ["-C", "3", "ERROR"]),
    ("kafka", ["-A", "4", "-B", "2", "-E", "WARN|ERROR"]),
]


@pytest.mark.parametrize(("topic", "args"), CONTEXT)
def test_context_lines_and_separators(
    shipped: CollectorProcess, topic: str, args: list[str]
) -> None:
    ours = shipped.wharf("grep", "-t", topic, *args[:-1], "--", args[-1])
    theirs = gnu_grep(*args[:-1], "--", args[-1], str(FILE[topic]))
    assert ours.returncode == theirs.returncode, ours.stderr
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()


def test_context_as_json_marks_matches_and_groups(shipped: CollectorProcess) -> None:
    done = shipped.wharf("grep", "-t", "auth", "-o", "json", "-C", "1", "Invalid user")
    records = [json.loads(x) for x in done.stdout.splitlines()]
    theirs = gnu_grep("-C", "1", "Invalid user", str(FILE["auth"])).stdout.split("--\n")
    groups: dict[int, list[str]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r["line"])
        assert r["match"] == ("Invalid user" in r["line"])
    assert ["\n".join(g) + "\n" for g in groups.values()] == theirs


def test_context_with_a_limit_stops_after_the_trailing_context(shipped: CollectorProcess) -> None:
    ours = shipped.wharf("grep", "-t", "auth", "-m", "3", "-A", "2", "Invalid user")
    theirs = gnu_grep("-m", "3", "-A", "2", "Invalid user", str(FILE["auth"]))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr


@pytest.mark.parametrize(
    "args",
    [["-F", "Googlebot"], ["-i", "-F", "controller"], ["-E", "sshd|kibana"],
     ["-F", "no such text anywhere"]],
)  # fmt: skip
def test_files_with_matches(shipped: CollectorProcess, args: list[str]) -> None:
    topics = sorted(FILE)
    ours = shipped.wharf("grep", "-l", *(f"-t{t}" for t in topics), *args[:-1], "--", args[-1])
    theirs = gnu_grep("-l", *args[:-1], "--", args[-1], *(str(FILE[t]) for t in topics))
    assert ours.returncode == theirs.returncode, ours.stderr
    listed = theirs.stdout.splitlines()
    assert ours.stdout.splitlines() == [
        f"{t}/{HOST}:{FILE[t]}" for t in topics if str(FILE[t]) in listed
    ]
    for t in topics:  # one topic: host:source alone
        one = shipped.wharf("grep", "-l", "-t", t, *args[:-1], "--", args[-1])
        assert one.stdout == (f"{HOST}:{FILE[t]}\n" if str(FILE[t]) in listed else "")


@pytest.mark.parametrize(("args", "status"), [(["-q", "sshd"], 0), (["-q", "zzz-nothing"], 1)])
def test_quiet(shipped: CollectorProcess, args: list[str], status: int) -> None:
    done = shipped.wharf("grep", "-t", "auth", *args)
    assert (done.returncode, done.stdout, done.stderr) == (status, "", "")
    assert gnu_grep(*args, str(FILE["auth"])).returncode == status


def test_damaged_batches_exit_2_and_still_print_the_rest(tmp_path: Path) -> None:
    """Like GNU grep after a read error: what matched is printed, the status is 2."""
    c = CollectorProcess(tmp_path / "data").start()
    try:
        for i in range(3):
            c.ship("dmg", "raw", "-", stdin=f"batch {i} line\n")
        seg = next((c.data / "topics" / "dmg" / "0").glob("*.seg"))
        data = seg.read_bytes()
        first = wb.peek_length(data, 0)
        second = wb.peek_length(data, first)
        with seg.open("r+b") as f:  # a flipped bit in the middle batch's payload (a bad disk)
            pos = first + second - 3
            f.seek(pos)
            f.write(bytes([data[pos] ^ 0x40]))
        done = c.wharf("grep", "-t", "dmg", "line")
        assert (done.returncode, done.stdout) == (2, "batch 0 line\nbatch 2 line\n")
        assert done.stderr.startswith("wharf: warning: 1 damaged batch(es) were skipped: ")
        assert done.stderr.count("\n") == 1
        counted = c.wharf("grep", "-t", "dmg", "-c", "line")
        assert (counted.returncode, counted.stdout) == (2, "2\n")
        context = c.wharf("grep", "-t", "dmg", "-C", "1", "batch 2")
        assert (context.returncode, context.stdout) == (2, "batch 2 line\n")
    finally:
        assert c.stop() == 0


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York"])
def test_time_windows_read_times_in_the_local_zone(shipped: CollectorProcess, tz: str) -> None:
    """``--from 2015-05-17 12:00`` is noon where the user is (TZ), unless a zone is given."""
    zone = ZoneInfo(tz)
    stamps = [r.ts for r in log_records("apache_combined.log", "clf")]
    lo = int(datetime(2015, 5, 17, 12, tzinfo=zone).timestamp()) * 10**9
    hi = int(datetime(2015, 5, 17, 13, 30, tzinfo=zone).timestamp()) * 10**9
    expected = sum(1 for t in stamps if lo <= t < hi)
    assert expected > 0
    local = shipped.wharf("grep", "-t", "web", "-c", "--from", "2015-05-17 12:00",
                          "--to", "2015-05-17T13:30", "", env={"TZ": tz})  # fmt: skip
    assert local.stdout == f"{expected}\n", local.stderr
    zoned = shipped.wharf("grep", "-t", "web", "-c", "--from", "2015-05-17T12:00:00Z",
                          "--to", "2015-05-17T13:30Z", "", env={"TZ": tz})  # fmt: skip
    utc_lo, utc_hi = 1431864000 * 10**9, 1431869400 * 10**9
    assert zoned.stdout == f"{sum(1 for t in stamps if utc_lo <= t < utc_hi)}\n"
