"""The other sinks, for real: stdout in each format, a file (appended, fsynced, torn tail),
a TCP receiver, and another topic through a real ingest server (exactly once)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from collector.storage import Store
from tests.harness import IngestUnderTest, LiveServer
from tests.replay.helpers import HOSTS, TcpReceiver, load_topic, wharf
from wharf import batch as wb
from wharf.record import Record
from wharf.topics import partition_for


def test_stdout_json_is_the_api_record(store: Store, server: LiveServer) -> None:
    parts = load_topic(store, "app", 10)
    done = wharf(server.url, "replay", "-t", "app")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(rows) == 30
    assert set(rows[0]) >= {"topic", "partition", "offset", "ts", "host", "source", "line"}
    for p, recs in parts.items():
        mine = [r for r in rows if r["partition"] == p]
        assert [r["line"] for r in mine] == [r.line for r in recs]
        assert [r["offset"] for r in mine] == list(range(len(recs)))
    assert "replayed 30 records of 'app' to stdout" in done.stderr


def test_stdout_raw_and_logfmt(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 3, hosts=["web-1"])
    raw = wharf(server.url, "replay", "-t", "app", "-o", "raw", "-q")
    assert raw.returncode == 0 and raw.stderr == ""
    assert raw.stdout.splitlines() == [f"web-1 request {i} status={200 + i}" for i in range(3)]
    logfmt = wharf(server.url, "replay", "-t", "app", "-o", "logfmt", "-q")
    first = logfmt.stdout.splitlines()[0]
    assert first.startswith("ts=2023-11-14T22:13:20.000000000Z topic=app partition=1 offset=0 ")
    assert "host=web-1 source=/var/log/app.log level=warn i=0 status=200" in first
    assert first.endswith('line="web-1 request 0 status=200"')


def test_file_sink_appends_and_a_second_group_run_adds_only_new(
    store: Store, server: LiveServer, tmp_path: Path
) -> None:
    load_topic(store, "app", 50)
    out = tmp_path / "out.ndjson"
    done = wharf(server.url, "replay", "-t", "app", "-g", "g", "--sink", f"file:{out}")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 150
    # More records arrive; the group picks up only those, appended to the same file.

    extra = [Record(ts=1, line=f"late {i}", host="web-1") for i in range(5)]
    store.append("app", partition_for("web-1", 3), wb.build(extra))
    again = wharf(server.url, "replay", "-t", "app", "-g", "g", "--sink", f"file://{out}")
    assert again.returncode == 0, again.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 155
    assert [r["line"] for r in rows[-5:]] == [f"late {i}" for i in range(5)]


def test_file_sink_starts_a_new_line_after_a_torn_one(
    store: Store, server: LiveServer, tmp_path: Path
) -> None:
    load_topic(store, "app", 2, hosts=["web-1"])
    out = tmp_path / "out.ndjson"
    out.write_bytes(b'{"topic": "app", "partit')  # what a kill in the middle of a write leaves
    done = wharf(server.url, "replay", "-t", "app", "--sink", f"file:{out}")
    assert done.returncode == 0, done.stderr
    assert "did not end with a newline" in done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == '{"topic": "app", "partit'
    assert [json.loads(x)["offset"] for x in lines[1:]] == [0, 1]


def test_file_sink_unwritable_is_one_line(store: Store, server: LiveServer, tmp_path: Path) -> None:
    load_topic(store, "app", 2)
    done = wharf(server.url, "replay", "-t", "app", "--sink", f"file:{tmp_path}/no/such/dir/x")
    assert done.returncode == 2
    assert done.stderr.startswith("wharf: No such file or directory")
    assert done.stderr.count("\n") == 1


def test_tcp_sink_lines(store: Store, server: LiveServer, tcp_receiver: TcpReceiver) -> None:
    parts = load_topic(store, "app", 40)
    done = wharf(
        server.url,
        "replay", "-t", "app", "--sink", f"tcp://127.0.0.1:{tcp_receiver.port}",
        "-o", "raw", "--batch", "7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = tcp_receiver.lines()
    assert sorted(lines) == sorted(r.line for recs in parts.values() for r in recs)
    for host in HOSTS:  # each host (one partition) in its order
        mine = [x for x in lines if x.startswith(f"{host} ")]
        assert mine == [f"{host} request {i} status={200 + i % 3}" for i in range(40)]
    assert tcp_receiver.connections == 1


def test_tcp_sink_nobody_listening_gives_up(store: Store, server: LiveServer) -> None:
    load_topic(store, "app", 2)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        done = wharf(
            server.url, "replay", "-t", "app", "--sink", f"tcp://127.0.0.1:{port}",
            "--retry-for", "1s",
        )  # fmt: skip
    assert done.returncode == 2
    assert "did not take a batch" in done.stderr and "connection refused" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def dest(tmp_path: Path) -> IngestUnderTest:
    srv = IngestUnderTest(tmp_path / "dest", tokens=["w-token"])
    yield srv  # type: ignore[misc]
    srv.close()


def _stored(store: Store, topic: str) -> dict[int, list[tuple[str, str, int]]]:
    out: dict[int, list[tuple[str, str, int]]] = {}
    for info in store.describe(topic).partitions:
        p = info.partition
        for b in store.partition(topic, p).read(0, 1 << 40):
            out.setdefault(p, []).extend((r.host, r.line, r.ts) for r in b.records())
    return out


def test_wharf_sink_copies_into_another_topic_exactly_once(
    store: Store, server: LiveServer, dest: IngestUnderTest
) -> None:
    parts = load_topic(store, "app", 60)
    sink = f"wharf://{dest.address}/app-copy"
    env = {"WHARF_SINK_TOKEN": "w-token"}
    first = wharf(server.url, "replay", "-t", "app", "--to-offset", "40", "--sink", sink,
                  "--batch", "25", env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    # The whole range again, overlapping what was copied: the overlap is not stored twice.
    second = wharf(server.url, "replay", "-t", "app", "--sink", sink, "--batch", "25", env=env)
    assert second.returncode == 0, second.stderr
    assert "stored before and not again" in second.stderr
    copied = _stored(dest.store, "app-copy")
    dest_parts = len(dest.store.describe("app-copy").partitions)
    for recs in parts.values():
        host = recs[0].host
        mine = copied[partition_for(host, dest_parts)]
        mine = [x for x in mine if x[0] == host]
        # Every record once, in order, in the host's partition of the destination.
        assert mine == [(r.host, r.line, r.ts) for r in recs]


def test_wharf_sink_wrong_token_is_one_clear_error(
    store: Store, server: LiveServer, dest: IngestUnderTest
) -> None:
    load_topic(store, "app", 3)
    done = wharf(
        server.url, "replay", "-t", "app", "--sink", f"wharf://{dest.address}/copy",
        env={"WHARF_SINK_TOKEN": "nope"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(f"wharf: the sink wharf://{dest.address}/copy")
    assert "Traceback" not in done.stderr
