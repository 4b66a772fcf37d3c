"""``collector.toml``: the collector's settings, decoded strictly (unknown keys are errors).

Every key has a default, so an empty file (or no file) runs a loopback-only collector on the
embedded store. Command-line flags override the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

import msgspec

from collector.storage.compaction import CompactionSettings
from collector.storage.topic_config import TopicConfig
from wharf.errors import InvalidArgument, WharfError
from wharf.fsutil import read_config_text
from wharf.protocol import MAX_FRAME
from wharf.topics import validate_topic

DEFAULT_LISTEN = "127.0.0.1:7070"
DEFAULT_HTTP = "127.0.0.1:7080"


class StorageSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How appends become durable, and how often retention runs."""

    fsync: Literal["always", "interval", "never"] = "always"
    fsync_interval_ms: int = 5
    retention_check_s: float = 60.0


class SearchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How searches use the machine."""

    # Worker processes that count scans over 1 MiB stored (grep -c): 0 is one per core, 1
    # keeps every scan in the collector's own process.
    processes: int = 0
    # Searches open at once (each a thread; more wait their turn). At most 4 scan at a time;
    # a search whose client reads slowly waits without holding one of those 4.
    max_running: int = 32

    def worker_count(self) -> int:
        """How many worker processes to run (1: none)."""
        return self.processes or os.cpu_count() or 1


class ApiSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[api]``: what one HTTP client may hold of the collector."""

    max_connections: int = 512  # past it a new connection gets 503 and is closed
    idle_timeout_s: float = 30.0  # no request in progress (headers still coming count) this long
    send_timeout_s: float = 60.0  # a streamed answer nobody reads for this long is dropped


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tokens. Writers (shippers, topic admin) and readers (grep, tail, replay) differ, so a
    leaked read token cannot inject logs. Empty lists mean no authentication (loopback only,
    unless ``allow_insecure_remote``)."""

    write_tokens: list[str] = []
    read_tokens: list[str] = []


class TlsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """TLS for both listeners (PEM files). ``client_ca`` turns on client certificates."""

    cert: str = ""
    key: str = ""
    client_ca: str = ""

    @property
    def enabled(self) -> bool:
        """Whether a certificate is configured."""
        return bool(self.cert)


class LimitSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Bounds that keep one bad or slow peer from hurting the others (what a client sees when
    one is reached: ``config/collector.toml``)."""

    max_connections: int = 1024
    # Of those, connections that have not completed their HELLO yet: a real shipper sends it
    # within a round trip, so a few per cent of the connections is plenty; past it the oldest
    # waiting one is closed to make room, so idle sockets cannot lock shippers out.
    max_preauth_connections: int = 128
    max_inflight_per_connection: int = 32  # batches accepted but not yet acknowledged
    handshake_timeout_s: float = 10.0  # HELLO must arrive this soon after connecting
    frame_timeout_s: float = 30.0  # a started frame must complete this soon (slowloris)
    idle_timeout_s: float = 90.0  # no frame at all (heartbeats included) for this long
    # Memory for frames being received, across all connections (a frame holds its full
    # announced size from the moment its length is read until it is complete). At least one
    # largest frame (wharf.protocol.MAX_FRAME, ~80 MiB); 256 MiB holds 3 of those or 60
    # shipper batches of 4 MiB at once. A frame that does not fit waits for room.
    max_buffered_frame_bytes: int = 256 << 20
    # Failed HELLOs (wrong token) per peer address (an IPv6 /64) per minute: past it, that
    # address's logins are refused, without the token being looked at, until it cools down.
    max_auth_failures_per_minute: int = 30
    # Topics in the embedded store: past it, creating one is refused (a retriable store error:
    # shippers keep the batches and resend them).
    max_topics: int = 1000
    # Segment files the embedded store keeps open at once (an LRU shared by every partition):
    # topics cost no file descriptors while idle. Lowered at start-up when the process's
    # descriptor limit (ulimit -n, LimitNOFILE=) is too low for it.
    max_open_segment_files: int = 256


class ClusterSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[cluster]``: store topics in NATS JetStream instead of the embedded store."""

    nats: list[str] = []  # server URLs (nats:// or tls://); several, for failover
    replicas: int = 3  # copies of every partition's stream (JetStream allows 1..5)
    name: str = "wharf"  # prefix of every stream and bucket: several deployments, one NATS
    max_batch_bytes: int = 8 << 20  # cap on a stored batch (the servers' max_payload caps too)


InputType = Literal["syslog", "forward", "otlp", "loki"]

# Per input type: the default listen address (loopback, like the other listeners; the
# protocol's well-known port), the protocols it speaks (the first is the default) and the
# largest message it takes (syslog: one message; forward: one decoded frame; otlp/loki: one
# request body, decompressed).
INPUT_DEFAULTS: Final[dict[str, tuple[str, tuple[str, ...], int]]] = {
    "syslog": ("127.0.0.1:514", ("udp", "tcp", "tls"), 64 << 10),
    "forward": ("127.0.0.1:24224", ("tcp", "tls"), 16 << 20),
    "otlp": ("127.0.0.1:4318", ("http", "https"), 16 << 20),
    "loki": ("127.0.0.1:3100", ("http", "https"), 16 << 20),
}


class InputSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One ``[[inputs]]`` entry: a listener for what hosts already send (``collector.inputs``).
    Empty values take the type's defaults (``INPUT_DEFAULTS``); read them through the
    properties."""

    type: InputType
    listen: str = ""  # host:port; UDP and TCP inputs may share a port number
    protocol: str = ""  # syslog: udp | tcp | tls; forward: tcp | tls; otlp, loki: http | https
    topic: str = ""  # default: the type's name
    name: str = ""  # in metrics, logs and status; default "type-protocol-port"
    max_message_bytes: int = 0  # 0: the type's default
    max_connections: int = 256  # TCP/TLS/HTTP connections open at once; past it: refused
    shared_key: str = ""  # forward: the shared key of the HELO/PING/PONG handshake
    self_hostname: str = ""  # forward: our name in HELO/PONG (default: this host's name)
    # Records gather this long (or until a batch is full) before they are appended; an input
    # whose senders wait for an ack (forward chunks, HTTP) appends at once instead.
    linger_ms: int = 200
    # Records received but not yet durable, by their bytes: past it TCP/TLS inputs stop reading,
    # HTTP inputs answer 503 with Retry-After, UDP datagrams are dropped (and counted).
    max_pending_bytes: int = 64 << 20

    @property
    def listen_address(self) -> str:
        """``listen`` or the type's default."""
        return self.listen or INPUT_DEFAULTS[self.type][0]

    @property
    def transport(self) -> str:
        """``protocol`` or the type's default."""
        return self.protocol or INPUT_DEFAULTS[self.type][1][0]

    @property
    def topic_name(self) -> str:
        """``topic`` or the type's name."""
        return self.topic or self.type

    @property
    def message_limit(self) -> int:
        """``max_message_bytes`` or the type's default."""
        return self.max_message_bytes or INPUT_DEFAULTS[self.type][2]

    @property
    def label(self) -> str:
        """``name``, or ``type-protocol-port``."""
        if self.name:
            return self.name
        port = self.listen_address.rpartition(":")[2]
        return f"{self.type}-{self.transport}-{port}"

    @property
    def tls(self) -> bool:
        """Whether the listener wraps its connections in TLS."""
        return self.transport in ("tls", "https")


class CollectorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole ``collector.toml``."""

    data_dir: str = "./wharf-data"
    listen: str = DEFAULT_LISTEN
    http: str = DEFAULT_HTTP
    allow_insecure_remote: bool = False
    storage: StorageSettings = StorageSettings()
    compaction: CompactionSettings = CompactionSettings()
    search: SearchSettings = SearchSettings()
    api: ApiSettings = ApiSettings()
    topic_defaults: TopicConfig = TopicConfig()
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings = TlsSettings()
    limits: LimitSettings = LimitSettings()
    cluster: ClusterSettings | None = None
    inputs: list[InputSettings] = []

    def check(self) -> None:
        """Refuse a configuration that would expose an unauthenticated listener (raises
        ``InvalidArgument`` on the first problem)."""
        for _, _, sentence in self._checks():
            raise InvalidArgument(sentence)

    def problems(self) -> Iterator[tuple[str, str]]:
        """Every problem ``check()`` looks for, as ``(key path, message)``: what
        ``wharf config check`` lists, where ``check()`` stops at the first."""
        for path, message, _ in self._checks():
            yield path, message

    def _checks(self) -> Iterator[tuple[str, str, str]]:
        """``(key path, message, sentence)`` per problem, in order; the sentence is the text
        ``check()`` has always raised."""
        for name, addr in (("listen", self.listen), ("http", self.http)):
            bad = _host_port_problem(addr)
            if bad is not None:
                yield name, bad, f"{name} {bad}"
                continue
            host, _ = split_host_port(addr, name)
            tokens = self.auth.write_tokens if name == "listen" else self.auth.read_tokens
            if not _is_loopback(host) and not tokens and not self.allow_insecure_remote:
                message = (
                    f"{addr!r} is not a loopback address and no "
                    f"{'write' if name == 'listen' else 'read'} token is set: refusing to serve "
                    "unauthenticated clients off this host (set auth tokens, or "
                    "allow_insecure_remote = true)"
                )
                yield name, message, f"{name} = {message}"
        if bool(self.tls.cert) != bool(self.tls.key):
            given, other = ("cert", "key") if self.tls.cert else ("key", "cert")
            yield (
                f"tls.{given}",
                f"must be given together with tls.{other}",
                "tls.cert and tls.key must be given together",
            )
        if self.search.processes < 0:
            message = f"must be 0 (one per core) or more, got {self.search.processes}"
            yield "search.processes", message, f"search.processes {message}"
        if self.search.max_running < 1:
            message = f"must be at least 1, got {self.search.max_running}"
            yield "search.max_running", message, f"search.max_running {message}"
        for name in ("max_connections", "idle_timeout_s", "send_timeout_s"):
            value = getattr(self.api, name)
            if value <= 0:
                message = f"must be more than 0, got {value}"
                yield f"api.{name}", message, f"api.{name} {message}"
        yield from _limit_checks(self.limits)
        yield from _compaction_checks(self.compaction)
        if self.cluster is not None:
            yield from _cluster_checks(self.cluster)
        yield from _input_checks(self)


def _compaction_checks(c: CompactionSettings) -> Iterator[tuple[str, str, str]]:
    if not 1 <= c.level <= 22:
        message = f"must be a zstd level, 1..22, got {c.level}"
        yield "compaction.level", message, f"compaction.level {message}"
    if not 0 < c.cpu_share <= 1:
        message = f"must be more than 0 and at most 1 (one core), got {c.cpu_share}"
        yield "compaction.cpu_share", message, f"compaction.cpu_share {message}"
    if c.check_s <= 0:
        message = f"must be more than 0, got {c.check_s}"
        yield "compaction.check_s", message, f"compaction.check_s {message}"
    if not 64 << 10 <= c.block_bytes <= 32 << 20:
        message = f"must be 64 KiB..32 MiB, got {c.block_bytes}"
        yield "compaction.block_bytes", message, f"compaction.block_bytes {message}"


def _limit_checks(limits: LimitSettings) -> Iterator[tuple[str, str, str]]:
    lowest = {
        "max_connections": 1,
        "max_preauth_connections": 1,
        "max_inflight_per_connection": 1,
        "max_auth_failures_per_minute": 1,
        "max_topics": 1,
        # One file read while another is written: fewer could not serve a read during a roll.
        "max_open_segment_files": 4,
        # Every frame the protocol allows must fit, or it would wait forever.
        "max_buffered_frame_bytes": MAX_FRAME,
    }
    for name, least in lowest.items():
        value = getattr(limits, name)
        if value < least:
            message = f"must be at least {least}, got {value}"
            yield f"limits.{name}", message, f"limits.{name} {message}"


def _cluster_checks(c: ClusterSettings) -> Iterator[tuple[str, str, str]]:
    if not c.nats:
        message = "must list at least one NATS server URL (nats://host:4222)"
        yield "cluster.nats", message, f"cluster.nats {message}"
    for url in c.nats:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("nats", "tls") or not rest:
            message = f"{url!r} is not a NATS URL (nats://host:port or tls://host:port)"
            yield "cluster.nats", message, f"cluster.nats: {message}"
    if not 1 <= c.replicas <= 5:
        message = f"must be 1..5 (JetStream's limit), got {c.replicas}"
        yield "cluster.replicas", message, f"cluster.replicas {message}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", c.name):
        message = f"{c.name!r} must be 1 to 32 of [a-z0-9-], starting with a letter or digit"
        yield "cluster.name", message, f"cluster.name {message}"
    if not 64 << 10 <= c.max_batch_bytes <= 64 << 20:
        message = f"must be 64 KiB..64 MiB, got {c.max_batch_bytes}"
        yield "cluster.max_batch_bytes", message, f"cluster.max_batch_bytes {message}"


def _input_checks(config: CollectorConfig) -> Iterator[tuple[str, str, str]]:
    labels: set[str] = set()
    taken: set[tuple[str, int, bool]] = set()  # (host, port, udp)
    for i, inp in enumerate(config.inputs):
        key = f"inputs[{i}]"
        problems: list[tuple[str, str]] = []
        protocols = INPUT_DEFAULTS[inp.type][1]
        if inp.transport not in protocols:
            problems.append(
                ("protocol", f"{inp.protocol!r} is not one of {', '.join(protocols)} ({inp.type})")
            )
        addr_problem = _host_port_problem(inp.listen_address)
        if addr_problem is not None:
            problems.append(("listen", addr_problem))
        else:
            host, port = split_host_port(inp.listen_address)
            where = (host, port, inp.transport == "udp")
            if port and where in taken:
                problems.append(("listen", f"{inp.listen_address} is used by another input"))
            taken.add(where)
            authenticated = (
                bool(inp.shared_key)
                if inp.type == "forward"
                else (inp.type in ("otlp", "loki") and bool(config.auth.write_tokens))
            )
            if not _is_loopback(host) and not authenticated and not config.allow_insecure_remote:
                how = {
                    "syslog": "syslog has no authentication",
                    "forward": "no shared_key is set",
                }.get(inp.type, "no write token is set")
                problems.append(
                    (
                        "listen",
                        f"{inp.listen_address!r} is not a loopback address and {how}: refusing "
                        "to take unauthenticated input from off this host (set "
                        "allow_insecure_remote = true)",
                    )
                )
        if inp.topic:
            try:
                validate_topic(inp.topic)
            except WharfError as exc:
                problems.append(("topic", str(exc)))
        if inp.label in labels:
            problems.append(("name", f"{inp.label!r} names two inputs (set name = ...)"))
        labels.add(inp.label)
        for name, least in (
            ("max_message_bytes", 0),
            ("max_connections", 1),
            ("linger_ms", 0),
            ("max_pending_bytes", 1 << 20),
        ):
            value = getattr(inp, name)
            if value < least:
                problems.append((name, f"must be at least {least}, got {value}"))
        if inp.message_limit > inp.max_pending_bytes:
            problems.append(
                ("max_pending_bytes", f"must hold one message of {inp.message_limit} bytes")
            )
        if inp.tls and not (config.tls.cert and config.tls.key):
            problems.append(("protocol", f"{inp.transport} needs [tls] cert and key"))
        if inp.type != "forward" and (inp.shared_key or inp.self_hostname):
            problems.append(("shared_key", "only forward inputs take shared_key/self_hostname"))
        for name, message in problems:
            yield f"{key}.{name}", message, f"{key}.{name} ({inp.label}): {message}"


def split_host_port(addr: str, what: str = "address") -> tuple[str, int]:
    """``"host:port"`` (``[v6]:port`` too) → ``(host, port)``, with a clear error."""
    bad = _host_port_problem(addr)
    if bad is not None:
        raise InvalidArgument(f"{what} {bad}")
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _host_port_problem(addr: str) -> str | None:
    """What is wrong with ``addr`` as ``HOST:PORT``, or ``None``."""
    host, sep, port = addr.rpartition(":")
    host = host.strip("[]")
    # ASCII digits only: "²".isdigit() is true and int("²") raises (a traceback, not an error).
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return f"{addr!r} is not HOST:PORT"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path | None) -> CollectorConfig:
    """Read and validate ``collector.toml`` (``None``: all defaults). Errors name file and key."""
    if path is None:
        return CollectorConfig()
    text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: {exc}") from exc
    try:
        return msgspec.convert(data, CollectorConfig)
    except (msgspec.ValidationError, InvalidArgument) as exc:
        raise InvalidArgument(f"{path}: {exc}") from exc
