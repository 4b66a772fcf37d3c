"""End to end on loopback with real processes: `wharf collector run`, `wharf ship`, `wharf grep`;
and a long search while ingest goes on."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.storage import Store, TopicConfig
from shipper.transport import Producer
from tests.harness import CollectorProcess, gnu_grep_bytes
from tests.storage.helpers import DATA
from wharf import batch as wb
from wharf.record import Record


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """A collector holding apache_combined.log (topic web) and auth.log (topic auth)."""
    c = CollectorProcess(tmp_path_factory.mktemp("e2e")).start()
    try:
        for topic, parser, name in (
            ("web", "clf", "apache_combined.log"),
            ("auth", "syslog", "auth.log"),
        ):
            done = c.wharf_bytes("ship", "-t", topic, "-p", parser, str(DATA / "logs" / name))
            assert done.returncode == 0, done.stderr
        yield c
    finally:
        assert c.stop() == 0


CASES = [
    ("web", "apache_combined.log", ["-F", "Googlebot"]),
    ("web", "apache_combined.log", ["-E", '" 404 [0-9]+']),
    ("web", "apache_combined.log", ["-i", "-F", "FIREFOX"]),
    ("web", "apache_combined.log", ["-c", "-F", "Mozilla"]),
    ("web", "apache_combined.log", ["-v", "-c", "-F", "GET"]),
    ("auth", "auth.log", ["-E", "Invalid user [a-z]+ from"]),
    ("auth", "auth.log", ["-c", "-E", "^Mar 27 13:0"]),
    ("auth", "auth.log", ["-F", "no such line anywhere"]),
]


@pytest.mark.parametrize(("topic", "name", "args"), CASES)
def test_wharf_grep_finds_what_grep_finds(
    shipped: CollectorProcess, topic: str, name: str, args: list[str]
) -> None:
    flags = [a for a in args[:-1] if a != "-E"]
    ours = shipped.wharf_bytes("grep", "-t", topic, *flags, "--", args[-1])
    theirs = gnu_grep_bytes(*args[:-1], "--", args[-1], str(DATA / "logs" / name))
    assert ours.returncode == theirs.returncode, ours.stderr
    # The same lines, each as often; wharf orders by record time (merged across hosts), grep by
    # file position, and these real logs are not perfectly time-ordered.
    assert sorted(ours.stdout.decode().splitlines()) == sorted(theirs.stdout.decode().splitlines())


def test_ship_from_stdin_and_json_output(shipped: CollectorProcess) -> None:
    lines = b"".join(f"stdin line {i}\r\n".encode() for i in range(100)) + b"last without newline"
    assert shipped.wharf_bytes("ship", "-t", "stdin", "-", stdin=lines).returncode == 0
    out = shipped.wharf_bytes("grep", "-t", "stdin", "-o", "json", "line")
    objs = [json.loads(x) for x in out.stdout.splitlines()]
    assert [o["line"] for o in objs] == [f"stdin line {i}" for i in range(100)] + [
        "last without newline"
    ]
    assert {"topic", "partition", "offset", "ts", "host", "source", "line", "fields"} <= objs[
        0
    ].keys()


def test_ship_joins_cri_fragments_like_the_daemon(shipped: CollectorProcess) -> None:
    t = "2024-05-01T12:00:00.000000001Z"
    text = (
        f"{t} stdout P first half, \n{t} stderr F an error between\n{t} stdout F second half\n"
        f"{t} stdout F whole line\n"
    )
    done = shipped.wharf_bytes("ship", "-t", "k8s", "-p", "cri", "-", stdin=text.encode())
    assert done.returncode == 0, done.stderr
    out = shipped.wharf_bytes("grep", "-t", "k8s", "-o", "json", "")
    got = [
        (o["fields"]["stream"], o["fields"]["message"])
        for o in map(json.loads, out.stdout.splitlines())
    ]
    assert got == [
        ("stdout", "first half, second half"),
        ("stderr", "an error between"),
        ("stdout", "whole line"),
    ]


def test_search_for_ten_seconds_while_ingest_keeps_its_rate(tmp_path: Path) -> None:
    """Searches run in threads off the event loop: a producer offering 5,000 records/s keeps
    getting its acks while full-topic regex scans run back to back for 10 seconds."""
    lines = (DATA / "logs" / "apache_combined.log").read_text().splitlines()
    with Store(tmp_path) as store:  # ~120 MB of real lines, written directly
        store.create_topic("big", TopicConfig())
        batch = wb.build([Record(ts=i, line=line, host="h") for i, line in enumerate(lines)])
        for _ in range(50):
            store.append("big", 0, batch)
    c = CollectorProcess(tmp_path).start()
    stop_at = time.monotonic() + 10
    searches = 0

    def search_loop() -> None:
        nonlocal searches
        while time.monotonic() < stop_at:
            # No literal to skip to: RE2 reads every byte of the topic.
            url = f"{c.url}/v1/search?topic=big&count=1&q=%5B0-9%5D%7B3%7D%20%5B0-9%5D%7B6%7D"
            with urllib.request.urlopen(url, timeout=120) as resp:
                assert b'"done"' in resp.read()
            searches += 1

    async def produce() -> tuple[int, float]:
        pid = uuid.uuid4().bytes
        p = Producer([c.address], producer_id=pid)
        acked, worst = 0, 0.0
        k = 0
        while time.monotonic() < stop_at:
            recs = [
                Record(
                    ts=time.time_ns(),
                    line=f"live {k} {j}",
                    host="p",
                    file_id="f",
                    offset=(k * 500 + j) * 20,
                )
                for j in range(500)
            ]
            t = time.monotonic()
            await p.send(
                "live",
                wb.build(recs, producer_id=pid, spans=[wb.Span("f", k * 10_000, (k + 1) * 10_000)]),
            )
            worst = max(worst, time.monotonic() - t)
            acked += 500
            k += 1
            await asyncio.sleep(max(0.0, t + 0.1 - time.monotonic()))
        await p.close()
        return acked, worst

    try:
        searcher = asyncio.run(_with_thread(search_loop, produce))
    finally:
        assert c.stop() == 0
    acked, worst = searcher
    assert searches >= 1
    # Offered: 10 batches/s for 10 s. A blocked event loop would stall acks for whole scans.
    assert acked >= 0.8 * 50_000, (acked, worst, searches)
    assert worst < 2.0, (acked, worst, searches)


async def _with_thread(fn, coro_fn):  # type: ignore[no-untyped-def]
    thread = asyncio.create_task(asyncio.to_thread(fn))
    result = await coro_fn()
    await thread
    return result
