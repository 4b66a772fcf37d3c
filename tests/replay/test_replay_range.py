"""Where a replay starts and stops: offsets, times (with the collector's offset lookup and
without it), partitions, ``--follow``; and bad input as one line with exit code 2."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.render import rfc3339_ns
from cli.timeparse import parse_time
from collector.storage import Store, TopicConfig
from tests.harness import LiveServer, wait_for
from tests.http.live import request
from tests.replay.helpers import (
    SECOND,
    T0,
    assert_one_error_line,
    load_topic,
    make_records,
    replay_api,
    spawn,
    wharf,
)
from wharf import batch as wb
from wharf.record import Record


def offsets(stdout: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for line in stdout.splitlines():
        r = json.loads(line)
        out.setdefault(r["partition"], []).append(r["offset"])
    return out


@pytest.fixture(params=[True, False], ids=["lookup", "no-lookup"])
def any_server(request: pytest.FixtureRequest, store: Store) -> Iterator[LiveServer]:
    """A collector with the offset-by-time lookup, and one without (older)."""
    with replay_api(store, lookup=request.param) as srv:
        yield srv


def test_from_time_to_time(store: Store, any_server: LiveServer) -> None:
    load_topic(store, "app", 100)
    start, end = rfc3339_ns(T0 + 40 * SECOND), rfc3339_ns(T0 + 43 * SECOND)
    done = wharf(any_server.url, "replay", "-t", "app", "--from-time", start, "--to-time", end)
    assert done.returncode == 0, done.stderr
    assert offsets(done.stdout) == {p: [40, 41, 42] for p in range(3)}


def test_from_time_with_a_zone_and_to_the_end(store: Store, any_server: LiveServer) -> None:
    load_topic(store, "app", 100)
    # 97 s after T0, written in +02:00.
    ts = T0 + 97 * SECOND
    zoned = rfc3339_ns(ts + 2 * 3600 * SECOND).replace("Z", "+02:00")
    assert parse_time(zoned) == ts
    done = wharf(any_server.url, "replay", "-t", "app", "--from-time", zoned)
    assert done.returncode == 0, done.stderr
    assert offsets(done.stdout) == {p: [97, 98, 99] for p in range(3)}


def test_from_time_after_everything_replays_nothing(store: Store, any_server: LiveServer) -> None:
    load_topic(store, "app", 10)
    done = wharf(any_server.url, "replay", "-t", "app", "--from-time", "now")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "replayed 0 records" in done.stderr


def test_offsets_every_partition_and_per_partition(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 30)
    done = wharf(server.url, "replay", "-t", "app", "--from-offset", "25", "--to-offset", "28")
    assert offsets(done.stdout) == {p: [25, 26, 27] for p in range(3)}
    done = wharf(
        server.url,
        "replay", "-t", "app", "--partition", "1", "--partition", "2",
        "--from-offset", "1:5", "--from-offset", "2:28", "--to-offset", "1:7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert offsets(done.stdout) == {1: [5, 6], 2: [28, 29]}


def test_to_offset_past_the_end_is_clamped_with_a_warning(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 5, hosts=["web-1"])
    done = wharf(server.url, "replay", "-t", "app", "--partition", "1", "--to-offset", "99")
    assert done.returncode == 0, done.stderr
    assert offsets(done.stdout) == {1: [0, 1, 2, 3, 4]}
    assert "partition 1 ends at 5 now" in done.stderr


def test_follow_delivers_new_records_and_stops_on_sigint(
    store: Store, server: LiveServer, tmp_path: Path
) -> None:
    load_topic(store, "app", 3, hosts=["web-1"])
    out = tmp_path / "follow.ndjson"
    proc = spawn(
        server.url, "replay", "-t", "app", "-g", "live", "--follow", "--sink", f"file:{out}"
    )
    try:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3, 30, "3")
        store.append("app", 1, wb.build(make_records("web-1", 4, start=T0 + 100 * SECOND)))
        wait_for(lambda: len(out.read_text().splitlines()) == 7, 30, "the 4 new records")
        wait_for(
            lambda: (
                request(server.url, "GET", "/v1/groups/live")[1]["offsets"][1]["committed"] == 7
            ),
            30,
            "the commit of the new records",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "resume with: wharf replay -t app --group live --follow" in err
    assert [json.loads(x)["offset"] for x in out.read_text().splitlines()] == list(range(7))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sink", "ftp://example.org/x"], "unknown sink 'ftp://example.org/x'"),
        (["--sink", "tcp://127.0.0.1"], "give a port"),
        (["--sink", "wharf://127.0.0.1:7070/"], "name the topic"),
        (["--sink", "wharf://127.0.0.1:7070/Bad"], "invalid topic name 'Bad'"),
        (["--sink", "http://user:pw@h/x"], "credentials in the URL"),
        (["--rate", "banana"], "invalid rate 'banana'"),
        (["--rate", "0/s"], "invalid rate '0/s'"),
        (["--speed", "fast"], "invalid speed 'fast'"),
        (["--rate", "5", "--speed", "2"], "give --rate or --speed, not both"),
        (["--from-offset", "x"], "invalid --from-offset 'x'"),
        (["--from-offset", "1", "--group", "g"], "give one of --from-offset, --from-time, --group"),
        (["--to-time", "1h", "--follow"], "give one of --to-offset, --to-time, --follow"),
        (["--from-time", "banana"], "invalid time 'banana'"),
        (["--from-time", "1h", "--to-time", "2h"], "empty time range"),
        (["-o", "xml"], "unknown output format 'xml'"),
        (["-o", "raw", "--sink", "http://127.0.0.1:9/x"], "the http sink takes records as JSON"),
        (["--sink-header", "X-A: 1"], "--sink-header is for http(s) sinks only"),
        (["--batch", "0"], "--batch must be between 1 and 100000"),
        (["--partition", "7"], "--partition 7: the topic has partitions 0..2"),
        (["--from-offset", "500"], "--from-offset 500 is past the end of partition 0"),
        (["--from-offset", "5:1"], "--from-offset names partition 5, which is not replayed"),
        (["--max-gap", "soon", "--speed", "2"], "invalid duration 'soon'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    store: Store, server: LiveServer, args: list[str], fragment: str
) -> None:
    load_topic(store, "app", 3)
    assert_one_error_line(wharf(server.url, "replay", "-t", "app", *args), fragment)


def test_unknown_topic_and_unreachable_collector(store: Store, server: LiveServer) -> None:
    assert_one_error_line(wharf(server.url, "replay", "-t", "nope"), "nope")
    assert_one_error_line(
        wharf("http://127.0.0.1:9", "replay", "-t", "app"), "cannot reach the collector"
    )


def test_records_deleted_by_retention_mid_replay_are_skipped_with_a_warning(
    tmp_path: Path,
) -> None:

    now_ms = [1_000_000]
    with Store(tmp_path / "data", clock_ms=lambda: now_ms[0]) as store:
        store.create_topic("ret", TopicConfig(partitions=1, retention_ms=1000, segment_ms=1))
        for k in range(3):  # three segments, each one batch bigger than a consume answer
            recs = [
                Record(ts=T0 + i, line=base64.b64encode(os.urandom(3000)).decode(), host="h")
                for i in range(k * 100, (k + 1) * 100)
            ]
            store.append("ret", 0, wb.build(recs))
            now_ms[0] += 10
        assert len(list((tmp_path / "data/topics/ret/0").glob("*.seg"))) == 3
        out = tmp_path / "out.ndjson"
        with replay_api(store) as srv:
            proc = spawn(
                srv.url, "replay", "-t", "ret", "--rate", "100/s", "--batch", "10",
                "--sink", f"file:{out}",
            )  # fmt: skip
            try:
                wait_for(
                    lambda: out.exists() and len(out.read_text().splitlines()) >= 20, 30, "20 lines"
                )
                # The first two segments expire while the replay is still in the first.
                assert store.enforce_retention(now_ms[0] + 1000 - 15) == 2
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "offsets 100..199 were deleted by retention before they were read" in err
    got = [json.loads(x)["offset"] for x in out.read_text().splitlines()]
    assert got == [*range(100), *range(200, 300)]
