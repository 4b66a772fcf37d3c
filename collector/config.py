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
from typing import Literal

import msgspec

from collector.storage.topic_config import TopicConfig
from wharf.errors import InvalidArgument

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

    def worker_count(self) -> int:
        """How many worker processes to run (1: none)."""
        return self.processes or os.cpu_count() or 1


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
    """Bounds that keep one bad or slow peer from hurting the others."""

    max_connections: int = 1024
    max_inflight_per_connection: int = 32  # batches accepted but not yet acknowledged
    handshake_timeout_s: float = 10.0  # HELLO must arrive this soon after connecting
    frame_timeout_s: float = 30.0  # a started frame must complete this soon (slowloris)
    idle_timeout_s: float = 90.0  # no frame at all (heartbeats included) for this long


class ClusterSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[cluster]``: store topics in NATS JetStream instead of the embedded store."""

    nats: list[str] = []  # server URLs (nats:// or tls://); several, for failover
    replicas: int = 3  # copies of every partition's stream (JetStream allows 1..5)
    name: str = "wharf"  # prefix of every stream and bucket: several deployments, one NATS
    max_batch_bytes: int = 8 << 20  # cap on a stored batch (the servers' max_payload caps too)


class CollectorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole ``collector.toml``."""

    data_dir: str = "./wharf-data"
    listen: str = DEFAULT_LISTEN
    http: str = DEFAULT_HTTP
    allow_insecure_remote: bool = False
    storage: StorageSettings = StorageSettings()
    search: SearchSettings = SearchSettings()
    topic_defaults: TopicConfig = TopicConfig()
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings = TlsSettings()
    limits: LimitSettings = LimitSettings()
    cluster: ClusterSettings | None = None

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
        if self.cluster is not None:
            yield from _cluster_checks(self.cluster)


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
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
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
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: {exc}") from exc
    try:
        return msgspec.convert(data, CollectorConfig)
    except (msgspec.ValidationError, InvalidArgument) as exc:
        raise InvalidArgument(f"{path}: {exc}") from exc
