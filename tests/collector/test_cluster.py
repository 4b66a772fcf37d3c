"""Cluster mode end to end: a 3-node NATS JetStream cluster, two collectors on it, one shipper
sending numbered lines (rotated by rename) to both. Every process is killed once with SIGKILL
and restarted — the stream leader, a follower, a collector, the shipper — and a collector is
frozen with SIGSTOP while the shipper's connection to it is cut. Afterwards: every line is
stored exactly once, both collectors answer grep, tail, replay and describe identically, and
every replica of every stream holds the same messages."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from collector.storage.jetstream import JetStreamStore
from collector.storage.jetstream.names import stream_name
from tests.harness import (
    CollectorProcess,
    ShipperProcess,
    wait_caught_up,
    write_shipper_config,
)
from tests.harness.nats import NatsCluster
from tests.shipper.helpers import assert_exactly_once, line, numbers

pytestmark = [pytest.mark.slow, pytest.mark.nats]

NAME = "e2e"
TOPIC = "app"
PARTITIONS = 1  # records go to the partition of their host: one shipper, one partition
FILES = ("app.log", "web.log")  # one writer each
ROTATE_EVERY = 4_000  # lines (of 100 bytes) between renames


class Writers:
    """One thread per file writing numbered lines (writer k owns the numbers k, k+W, ...) and
    renaming its file away every ``ROTATE_EVERY`` lines, until ``stop()``; bounded by time."""

    def __init__(self, logs: Path, limit_s: float = 240.0) -> None:
        self.logs = logs
        self.written = [0] * len(FILES)
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_s
        self._threads = [
            threading.Thread(target=self._write, args=(k,), daemon=True) for k in range(len(FILES))
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _write(self, k: int) -> None:
        live = self.logs / FILES[k]
        f = live.open("ab")
        n, rot = 0, 0
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            step = len(FILES)
            f.write(b"".join(line((n + i) * step + k) for i in range(40)))
            f.flush()
            n += 40
            self.written[k] = n
            if n % ROTATE_EVERY == 0:
                f.close()
                rot += 1
                os.rename(live, self.logs / f"{FILES[k]}.{rot}")
                f = live.open("ab")
            time.sleep(0.01)
        f.close()

    def stop(self) -> list[int]:
        """Every number written."""
        self._stop.set()
        for t in self._threads:
            t.join(30)
        step = len(FILES)
        return [i * step + k for k in range(step) for i in range(self.written[k])]


def _stored_numbers(urls: list[str]) -> list[int]:
    """Every number stored in the topic, read from the cluster by a fresh reader."""
    found: list[int] = []
    with JetStreamStore(urls, name=NAME, replicas=3) as store:
        for number in range(PARTITIONS):
            part = store.partition(TOPIC, number)  # opened: its index read the whole stream
            for batch in part.read(part.start_offset, max_bytes=1 << 40):
                found.extend(numbers(r.line for r in batch.records()))
    return found


def _answers(col: CollectorProcess, tmp: Path) -> dict[str, object]:
    """What a person asking this collector gets: grep, tail, replay and describe."""
    out: dict[str, object] = {}
    grep = col.wharf("grep", "-t", TOPIC, "-F", "-c", "n=")
    assert grep.returncode == 0, grep.stderr + col.tail()
    out["grep -c"] = grep.stdout
    tail = col.wharf("tail", "-t", TOPIC, "-n", "50", "--no-follow", "-o", "json")
    assert tail.returncode == 0, tail.stderr + col.tail()
    out["tail"] = tail.stdout
    sink = tmp / f"replay-{col.http_port}.ndjson"
    replay = col.wharf("replay", "-t", TOPIC, "--from-offset", "0", "-q", "--sink", f"file:{sink}")
    assert replay.returncode == 0, replay.stderr + col.tail()
    out["replay"] = sink.read_bytes()
    describe = col.wharf("topics", "describe", TOPIC, "-o", "json")
    assert describe.returncode == 0, describe.stderr + col.tail()
    out["describe"] = json.loads(describe.stdout)
    return out


def test_every_process_killed_once_every_line_stored_once(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats", n=3) as cluster:
        config = tmp_path / "collector.toml"
        config.write_text(
            f"[cluster]\nnats = {json.dumps(cluster.urls)}\nreplicas = 3\nname = {NAME!r}\n"
        )
        a, b = (
            CollectorProcess(tmp_path / d, fixed_ports=True, args=["--config", str(config)])
            for d in ("a", "b")
        )
        a.start()
        b.start()
        made = a.wharf("topics", "create", TOPIC, "--partitions", str(PARTITIONS))
        assert made.returncode == 0, made.stderr + a.tail()
        logs, state = tmp_path / "logs", tmp_path / "state"
        logs.mkdir()
        shipper_config = write_shipper_config(
            tmp_path / "shipper.toml",
            state_dir=state,
            collectors=[a.address, b.address],
            inputs=[{"paths": [str(logs / "*.log")], "topic": TOPIC}],
            batch_bytes=64 << 10,
        )
        sh = ShipperProcess(shipper_config, tmp_path / "shipper.log").start()
        writers = Writers(logs)
        writers.start()
        stream = stream_name(NAME, TOPIC, 0)

        def progress(seconds: float) -> None:
            """Let lines flow for a while, and check that they do."""
            before = sum(writers.written)
            time.sleep(seconds)
            assert sum(writers.written) > before, "the writers stalled"

        progress(2)
        # 1. the stream's leader (appends wait for a new one: an election takes seconds), then
        # a follower
        leader = cluster.stream_leader(stream)
        leader.kill()
        progress(3)
        leader.restart()
        follower = cluster.replicas_of(stream)[0]
        follower.kill()
        progress(3)
        follower.restart()
        # 2. the collector the shipper sends to (the first that answers: a)
        a.kill()
        progress(2)
        a.restart()
        # 3. the shipper
        progress(2)
        sh.kill()
        sh.start()
        # 4. a frozen collector: the shipper, restarted, finds a (first) silent and fails over
        # to b; a wakes with whatever it had in flight, and must not store it twice.
        progress(1)
        os.kill(a.pid, signal.SIGSTOP)
        try:
            sh.kill()
            sh.start(wait_ready=False)
            progress(8)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        progress(2)

        written = writers.stop()
        wait_caught_up(state, timeout=120)
        assert sh.term() == 0, sh.output()

        cluster.wait_replicas_current(stream)
        seqs = cluster.last_seqs(stream)
        assert len(set(seqs.values())) == 1, f"replicas of {stream} differ: {seqs}"
        found = _stored_numbers(cluster.urls)
        assert_exactly_once(found, written)

        answers = [_answers(col, tmp_path) for col in (a, b)]
        assert answers[0] == answers[1]
        assert int(str(answers[0]["grep -c"]).split()[-1]) == len(written)
        # The faults met work in flight: appends waited out the election, and the restarted
        # shipper found the frozen collector silent before it failed over.
        logs_of_collectors = a.log.read_text() + b.log.read_text()
        assert "append retried" in logs_of_collectors
        assert "no answer within" in sh.output(since_start=False)
        assert "Traceback" not in logs_of_collectors + sh.output(since_start=False)

        # What an operator sees of the cluster: `wharf status` and /metrics.
        text = a.wharf("status", "-o", "text", env={"COLUMNS": "200"}).stdout
        assert "NATS JetStream, 3 servers" in text and stream in text, text
        with urllib.request.urlopen(f"{b.url}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "wharf_cluster_servers 3.0" in metrics
        assert f'wharf_cluster_stream_replicas_current{{partition="0",topic="{TOPIC}"}} 3.0' in (
            metrics
        )
        assert f'wharf_cluster_index_lag_batches{{partition="0",topic="{TOPIC}"}} 0.0' in metrics
        a.stop()
        b.stop()
