"""``collector.toml``: the collector's settings, decoded strictly (unknown keys are errors).

Every key has a default, so an empty file (or no file) runs a loopback-only collector on the
embedded store. Command-line flags override the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
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

    def check(self) -> None:
        """Refuse a configuration that would expose an unauthenticated listener."""
        for name, addr in (("listen", self.listen), ("http", self.http)):
            host, _ = split_host_port(addr, name)
            tokens = self.auth.write_tokens if name == "listen" else self.auth.read_tokens
            if not _is_loopback(host) and not tokens and not self.allow_insecure_remote:
                raise InvalidArgument(
                    f"{name} = {addr!r} is not a loopback address and no "
                    f"{'write' if name == 'listen' else 'read'} token is set: refusing to serve "
                    "unauthenticated clients off this host (set auth tokens, or "
                    "allow_insecure_remote = true)"
                )
        if bool(self.tls.cert) != bool(self.tls.key):
            raise InvalidArgument("tls.cert and tls.key must be given together")
        if self.search.processes < 0:
            raise InvalidArgument(
                f"search.processes must be 0 (one per core) or more, got {self.search.processes}"
            )


def split_host_port(addr: str, what: str = "address") -> tuple[str, int]:
    """``"host:port"`` (``[v6]:port`` too) → ``(host, port)``, with a clear error."""
    host, sep, port = addr.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidArgument(f"{what} {addr!r} is not HOST:PORT")
    return host, int(port)


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
