"""The collector process against the limits of its machine: file descriptors and a full disk
(issue 13, items 4, 10 and 12). Real child processes on loopback; the full-disk tests mount a
small tmpfs and so need root."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import socket
import urllib.error
import urllib.request
from pathlib import Path

from collector.storage import Store
from shipper.transport import Producer
from tests.collector.limited import LimitedCollector
from tests.harness import CollectorProcess, wait_for
from tests.storage.helpers import fill_disk, numbered, small_disk
from wharf import batch as wb
from wharf import protocol as wp

WAIT_S = 60.0  # a failure detector, not a speed check


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT_S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


async def _send_each(address: str, topics: list[str], start: int, count: int) -> None:
    """One batch to each topic, over one connection, all acknowledged."""
    p = Producer([address], producer_id=bytes(16), deadline_s=WAIT_S, window=16)
    try:
        async with asyncio.timeout(2 * WAIT_S):  # whatever the producer's deadline covers
            sends = (p.send(t, numbered(start, count, file_id=t)) for t in topics)
            acks = await asyncio.gather(*sends)
    finally:
        await p.close()
    assert all(a.base_offset == start and a.record_count == count for a in acks)


def _soft_nofile(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    found = re.search(r"^Max open files\s+(\d+)\s+(\d+)", text, re.M)
    assert found is not None, text
    return int(found[1]), int(found[2])


def test_many_topics_under_a_low_descriptor_limit_and_a_restart(tmp_path: Path) -> None:
    """Issue 13, item 4: two descriptors per topic for good, so at a few hundred topics the
    collector hit `ulimit -n` and then could not even restart on its own data."""
    limit = 128
    names = [f"t{i:03d}" for i in range(150)]
    with LimitedCollector(
        tmp_path / "data",
        rlimits={resource.RLIMIT_NOFILE: (limit, limit)},
        log=tmp_path / "collector.log",
    ) as c:
        c.start()
        asyncio.run(_send_each(c.address, names, 0, 10))
        c.stop()
        c.start()
        status, topics = _get(f"{c.url}/v1/topics")
        assert status == 200
        assert sorted(str(t["name"]) for t in topics["topics"]) == names  # type: ignore[index, union-attr]
        asyncio.run(_send_each(c.address, names, 10, 10))
        assert c.stop() == 0
        for name in names[::37]:
            assert [int(line[4:12]) for line in c.lines(name)] == list(range(20))
        # It said what to do about a limit below what its settings may need.
        assert "LimitNOFILE" in c.log.read_text()


def test_the_collector_raises_its_soft_descriptor_limit_to_the_hard_one(tmp_path: Path) -> None:
    hard = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 8192)
    with LimitedCollector(
        tmp_path / "data",
        rlimits={resource.RLIMIT_NOFILE: (64, hard)},
        log=tmp_path / "collector.log",
    ) as c:
        c.start()
        assert _soft_nofile(c.pid) == (hard, hard)


def _nack_for(address: str, batch: bytes) -> wp.Event:
    """Send one PRODUCE on a fresh connection; the reply."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as s:
        conn = wp.Connection(wp.Role.CLIENT)
        s.sendall(conn.send(wp.Hello(wp.PROTOCOL_VERSION, bytes(16))))
        while True:
            ev = conn.next_event()
            if ev is wp.NEED_DATA:
                data = s.recv(65536)
                assert data, "closed without a reply"
                conn.receive_data(data)
            elif isinstance(ev, wp.Welcome):
                s.sendall(conn.send(wp.Produce(1, "t", batch)))
            else:
                return ev


def test_healthz_says_degraded_on_a_full_disk_and_recovers_when_space_is_freed(
    tmp_path: Path,
) -> None:
    """Issue 13, item 10: /healthz said 200 while a partition refused every write, and the
    partition stayed offline after space was freed, until a restart."""
    with (
        small_disk(tmp_path / "disk") as disk,
        CollectorProcess(disk / "data", log=tmp_path / "collector.log") as c,
    ):
        c.start()
        asyncio.run(_send_each(c.address, ["t"], 0, 100))
        filler = fill_disk(disk)
        big = numbered(100, 2000)
        ev = _nack_for(c.address, big)
        assert isinstance(ev, wp.Nack) and (ev.code, ev.retriable) == ("store_error", True), ev
        status, body = _get(f"{c.url}/healthz")
        assert status == 503 and body["status"] == "degraded", body
        assert "t/0" in str(body["error"]), body
        filler.unlink()
        wait_for(lambda: _get(f"{c.url}/healthz")[0] == 200, WAIT_S, "/healthz back to 200")
        asyncio.run(_send_each(c.address, ["t"], 100, 2000))
        assert c.stop() == 0
        assert [int(line[4:12]) for line in c.lines("t")] == list(range(2100))


def test_the_collector_starts_on_a_full_disk_without_leaving_partial_copies(
    tmp_path: Path,
) -> None:
    """Issue 13, item 12: with a torn segment tail to cut and no space left, the collector
    exited at start, and each attempt left a partial `.torn-*` copy eating freed space."""
    with (
        small_disk(tmp_path / "disk") as disk,
        CollectorProcess(disk / "data", log=tmp_path / "collector.log") as c,
    ):
        c.start()
        asyncio.run(_send_each(c.address, ["t"], 0, 100))
        c.kill()
        seg = next((disk / "data" / "topics" / "t" / "0").glob("*.seg"))
        good = seg.stat().st_size
        torn = wb.with_offset(numbered(100, 3000), 100, 1)
        with seg.open("ab") as f:
            f.write(torn[:-100])  # a batch cut short by the crash
        fill_disk(disk)
        for _ in range(2):
            c.start()
            assert seg.stat().st_size == good
            c.kill()
        copies = {p.name: p.stat().st_size for p in seg.parent.glob("*.torn-*")}
        assert all(size == len(torn) - 100 for size in copies.values()), copies
        with Store(disk / "data") as store:
            part = store.partition("t", 0)
            assert part.end_offset == 100
        assert os.statvfs(disk).f_bavail > 0
