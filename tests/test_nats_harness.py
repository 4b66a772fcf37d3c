"""The NATS harness against real servers: one node stores, serves and keeps a message across a
SIGKILL; a three-node cluster keeps an R3 stream writable and whole when its leader is killed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import pytest
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck, RawStreamMsg, StorageType

from tests.harness.nats import NatsCluster, nats_server_binary, run_js
from tests.harness.wait import wait_for

pytestmark = pytest.mark.nats

STREAM = "LOGS"
PUBLISH_TIMEOUT_S = 30.0  # per message, across a leader election; a bound, not a speed check


def add_stream(cluster: NatsCluster, replicas: int) -> None:
    info = cluster.js(
        lambda js: js.add_stream(
            name=STREAM,
            subjects=["logs.>"],
            num_replicas=replicas,
            storage=StorageType.FILE,
            allow_direct=True,
        )
    )
    assert info.config.num_replicas == replicas


async def publish_line(js: JetStreamContext, i: int) -> PubAck:
    headers = {"Nats-Msg-Id": f"m{i}"}
    return await js.publish(f"logs.app{i % 3}", b"line %d" % i, headers=headers)


async def direct_get(js: JetStreamContext, seq: int) -> RawStreamMsg:
    return await js.get_msg(STREAM, seq, direct=True)


def publish(cluster: NatsCluster, numbers: Iterable[int]) -> None:
    """Publish ``line <i>`` for each number, each acknowledged once: a publish whose answer was
    lost (a dying leader) is sent again, and its ``Nats-Msg-Id`` makes the stream drop the copy."""
    for i in numbers:
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        while True:
            try:
                ack = cluster.js(partial(publish_line, i=i))
            except (OSError, TimeoutError, NatsError):
                assert time.monotonic() < deadline, f"message {i} not acknowledged{cluster.tail()}"
                time.sleep(0.2)
                continue
            assert ack.stream == STREAM
            break


def stored(cluster: NatsCluster, count: int) -> list[bytes]:
    """Messages 1..count, each read with a direct get (any current replica answers)."""
    return [cluster.js(partial(direct_get, seq=seq)).data or b"" for seq in range(1, count + 1)]


def replicas_at(cluster: NatsCluster, seq: int) -> dict[str, int | None] | None:
    """Every running node's own replica's last sequence, if all are at ``seq``."""
    seqs = cluster.last_seqs(STREAM)
    return seqs if set(seqs.values()) == {seq} else None


def test_one_node_serves_a_published_message_and_keeps_it_across_sigkill(tmp_path: Path) -> None:
    assert nats_server_binary().parent == Path(sys.executable).parent
    with NatsCluster(tmp_path, 1) as cluster:
        (node,) = cluster.nodes
        assert not node.clustered
        assert "cluster {" not in node.config.read_text()
        add_stream(cluster, 1)

        ack = cluster.js(lambda js: js.publish("logs.web", b"hello"))
        assert (ack.stream, ack.seq) == (STREAM, 1)
        msg = cluster.js(lambda js: js.get_msg(STREAM, 1, direct=True))
        assert (msg.subject, msg.data) == ("logs.web", b"hello")
        assert cluster.stream_leader(STREAM) is node

        node.pause()  # a hung server: a call gives up at its deadline instead of hanging
        with pytest.raises((OSError, TimeoutError, NatsError)):
            run_js([node.url], lambda js: js.stream_info(STREAM))
        node.resume()
        assert cluster.stream_info(STREAM).state.last_seq == 1

        url = node.url
        node.kill()
        node.restart()
        assert node.url == url  # same port: clients find it again
        msg = cluster.js(lambda js: js.get_msg(STREAM, 1, direct=True))
        assert (msg.subject, msg.data) == ("logs.web", b"hello")
    assert not node.running


@pytest.mark.slow
def test_r3_stream_elects_a_new_leader_and_the_killed_one_catches_up(tmp_path: Path) -> None:
    with NatsCluster(tmp_path, 3) as cluster:
        add_stream(cluster, 3)
        publish(cluster, range(20))

        leader = cluster.stream_leader(STREAM)
        followers = cluster.replicas_of(STREAM)
        assert sorted(n.server_name for n in [leader, *followers]) == ["n0", "n1", "n2"]

        leader.kill()
        successor = cluster.stream_leader(STREAM)  # polls until elected (bounded)
        assert successor in followers
        publish(cluster, range(20, 40))
        assert cluster.stream_info(STREAM).state.last_seq == 40

        leader.restart()
        try:
            seqs = wait_for(lambda: replicas_at(cluster, 40), 60, "every replica at sequence 40")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {cluster.last_seqs(STREAM)}{cluster.tail()}") from None
        assert len(seqs) == 3
        cluster.wait_replicas_current(STREAM)
        assert stored(cluster, 40) == [b"line %d" % i for i in range(40)]
