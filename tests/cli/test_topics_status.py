"""``wharf topics`` (sizes, compression ratio, delete with confirmation) and ``wharf status``
(health, topics, ingest rate, connected shippers) against real collectors."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import uuid
from pathlib import Path
from typing import Any

from collector.http import ingest_sessions
from shipper.transport import Producer
from tests.cli.conftest import SHIPPED
from tests.cli.helpers import LOGS, assert_one_error_line
from tests.harness import WHARF, CollectorProcess, IngestUnderTest, LiveServer, clean_env
from wharf import batch as wb
from wharf.record import Record


def test_topics_report_exact_raw_sizes(shipped: CollectorProcess) -> None:
    listed = {
        t["name"]: t for t in map(json.loads, shipped.wharf("topics", "list").stdout.splitlines())
    }
    for topic, (_, name) in SHIPPED.items():
        t = listed[topic]
        lines = (LOGS / name).read_bytes()
        # one record per line, and the lines' raw size is the file's size, newlines included
        assert (t["records"], t["line_bytes"]) == (lines.count(b"\n"), len(lines))
        assert t["compression_ratio"] == round(len(lines) / t["bytes"], 3)
        assert t["config"]["retention_ms"] > 0 and t["min_ts"] <= t["max_ts"]
    described = json.loads(shipped.wharf("topics", "describe", "web", "-o", "json").stdout)
    assert described == listed["web"]
    assert described["partitions"][0]["line_bytes"] == described["line_bytes"]


def test_topic_tables(shipped: CollectorProcess) -> None:
    env = {"COLUMNS": "200"}
    table = shipped.wharf("topics", "list", "-o", "table", env=env).stdout
    web = next(x for x in table.splitlines() if " web " in x)
    ratio = json.loads(shipped.wharf("topics", "describe", "web").stdout)["compression_ratio"]
    assert f"{ratio:.1f}x" in web and "10,000" in web and "2015-05-17" in web and "1w" in web
    described = shipped.wharf("topics", "describe", "auth", "-o", "table", env=env).stdout
    assert "compression" in described and "retention" in described and "7,121" in described


def _answer(args: list[str], env: dict[str, str], answer: bytes) -> tuple[str, int]:
    """Run with stdin on a terminal that types ``answer``; (all output, status)."""
    master, slave = pty.openpty()
    with subprocess.Popen([WHARF, *args], stdin=slave, stdout=slave, stderr=slave, env=env) as proc:
        os.close(slave)
        os.write(master, answer)
        out = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        os.close(master)
        return out.decode(), proc.wait(60)


def test_create_and_delete_with_confirmation(tmp_path: Path) -> None:
    c = CollectorProcess(tmp_path / "data").start()
    try:
        assert c.wharf("topics", "create", "scratch", "--partitions", "2", "--retention",
                       "12h").returncode == 0  # fmt: skip
        c.ship("scratch", "raw", "-", stdin="one\ntwo\n")
        # no terminal to ask on: refused, nothing deleted
        assert_one_error_line(c.wharf("topics", "delete", "scratch"), "without --yes")
        out, status = _answer(["topics", "delete", "scratch"], c.env, b"n\n")
        assert status == 1 and "Delete topic 'scratch' and its 2 records" in out
        assert "nothing deleted" in out
        assert json.loads(c.wharf("topics", "describe", "scratch").stdout)["records"] == 2
        out, status = _answer(["topics", "delete", "scratch"], c.env, b"y\n")
        assert status == 0 and "deleted topic scratch" in out
        assert_one_error_line(c.wharf("topics", "describe", "scratch"), "no topic 'scratch'")
        c.wharf("topics", "create", "other")
        done = c.wharf("topics", "delete", "other", "--yes")
        assert (done.returncode, done.stdout) == (0, "deleted topic other\n")
        assert_one_error_line(c.wharf("topics", "delete", "nope", "--yes"), "no topic 'nope'")
        assert_one_error_line(c.wharf("topics", "delete", "nope"), "no topic 'nope'")
    finally:
        assert c.stop() == 0


def test_status_of_a_running_collector(tmp_path: Path) -> None:
    # fixed ports: once it stopped, nothing else may answer at its address (see harness.ports)
    c = CollectorProcess(tmp_path / "data", fixed_ports=True).start()
    try:
        c.ship("auth", "syslog", LOGS / "auth.log")
        c.ship("app", "raw", "-", stdin="a\nb\nc\n")
        done = c.wharf("status")  # piped: JSON
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["status"] == "ok" and info["error"] is None and info["pid"] == c.proc.pid
        assert {t["name"]: t["records"] for t in info["topics"]} == {"app": 3, "auth": 7121}
        # every record stored since the collector started is in the window (it is young)
        assert info["ingest"]["records"] == 7124
        assert info["ingest"]["records_per_s"] > 0
        assert set(info["ingest"]["topics"]) == {"app", "auth"}
        text = c.wharf("status", "-o", "text", env={"COLUMNS": "200"}).stdout
        assert "healthy" in text and "records/s" in text and "auth" in text
        # a shipper connected right now is listed (`collector run` passes the ingest server's
        # sessions to the API)
        pid = uuid.uuid4().bytes

        async def while_connected() -> dict[str, Any]:
            producer = Producer([c.address], producer_id=pid)
            await producer.send("app", wb.build([Record(ts=1, line="d")], producer_id=pid))
            try:
                done = await asyncio.to_thread(c.wharf, "status", "-o", "json")
                return dict(json.loads(done.stdout))
            finally:
                await producer.close()

        connected = asyncio.run(while_connected())
        assert pid.hex() in [s["producer_id"] for s in connected["shippers"]]
    finally:
        assert c.stop() == 0
    gone = subprocess.run([WHARF, "status"], capture_output=True, text=True, check=False,
                          env=clean_env(WHARF_HTTP=c.url))  # fmt: skip
    assert_one_error_line(gone, f"cannot reach the collector at {c.url}")


def test_status_lists_connected_shippers(tmp_path: Path) -> None:
    """The sessions provider reads a real ingest server's connections."""
    ingest = IngestUnderTest(tmp_path / "data")
    pid = uuid.uuid4().bytes
    producer = Producer([ingest.address], producer_id=pid)
    try:
        with LiveServer(ingest.store, sessions=ingest_sessions(ingest.server)) as srv:
            batch = wb.build([Record(ts=1, line="hello", host="h")], producer_id=pid)
            ingest.loop.run(producer.send("app", batch))
            done = subprocess.run([WHARF, "status", "-o", "json"], capture_output=True, text=True,
                                  env=clean_env(WHARF_HTTP=srv.url), check=False)  # fmt: skip
            info = json.loads(done.stdout)
            (shipper,) = info["shippers"]
            assert shipper["producer_id"] == pid.hex()
            assert shipper["peer"].startswith("127.0.0.1:") and shipper["connected_s"] >= 0
            ingest.loop.run(producer.close())
    finally:
        ingest.close()
