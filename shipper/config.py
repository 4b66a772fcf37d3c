"""``shipper.toml``: the shipper's settings, decoded strictly (an unknown key is an error that
names the file and the key, never a silence).

The smallest useful file names a collector, a ``state_dir`` and one ``[[inputs]]`` with
``paths`` and ``topic``; every other key has a default chosen for a production host.
"""

from __future__ import annotations

import socket
import ssl
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from parsers import get_parser
from parsers.lines import DEFAULT_MAX_LINE_BYTES
from parsers.multiline import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LINES,
    Multiline,
    MultilineConfig,
)
from shipper.container import FORMATS as CONTAINER_FORMATS
from wharf.address import host_port_problem
from wharf.errors import InvalidArgument
from wharf.fsutil import read_config_text
from wharf.topics import validate_topic

DEFAULT_COLLECTOR = "127.0.0.1:7070"
DEFAULT_STATE_DIR = "/var/lib/wharf/shipper"
MAX_BUILDERS = 64  # builder processes (``builders``); more than the cores only adds memory

# Rotated copies that are compressed are never read again: their lines were read from the live
# file before rotation, and decompressing them would only duplicate (Filebeat and Promtail
# exclude them the same way).
COMPRESSED_SUFFIXES = (".gz", ".zst", ".xz", ".bz2", ".lz4", ".zip", ".Z")


class MultilineSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``multiline = { ... }``: see ``parsers.multiline`` (set exactly one mode)."""

    preset: str | None = None
    rules: list[tuple[str, str, str]] = []
    start: str | None = None
    continuation: str | None = None
    pattern: str | None = None
    negate: bool = False
    match: Literal["after", "before"] = "after"
    max_lines: int = DEFAULT_MAX_LINES
    max_bytes: int = DEFAULT_MAX_BYTES
    flush_timeout_s: float = 5.0

    def to_config(self) -> MultilineConfig:
        """The parser library's form (validated by building a grouper once)."""
        cfg = MultilineConfig(
            preset=self.preset,
            rules=tuple(self.rules),
            start=self.start,
            continuation=self.continuation,
            pattern=self.pattern,
            negate=self.negate,
            match=self.match,
            max_lines=self.max_lines,
            max_bytes=self.max_bytes,
            flush_timeout_ns=int(self.flush_timeout_s * 1e9),
        )
        Multiline(cfg)
        return cfg


class InputConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One ``[[inputs]]`` table: which files, and how their lines become records."""

    paths: list[str]
    topic: str
    name: str = ""
    exclude: list[str] = []
    parser: str = "raw"
    parser_options: dict[str, Any] = {}
    multiline: str | MultilineSettings | None = None
    fields: dict[str, Any] = {}
    start_at: Literal["beginning", "end"] = "beginning"
    # Rotated copies compressed by logrotate are skipped unless this is set to false.
    exclude_compressed: bool = True
    # parser "cri" or "docker": join the fragments runtimes cut long lines into (16 KiB each)
    # into one record (Fluent Bit's multiline.parser cri/docker, Vector's kubernetes_logs).
    join_partial: bool = True
    # Text encoding of the files: "auto" reads a UTF-16 byte order mark at the start of a file
    # (Windows tools write them), else UTF-8; or "utf-8", "utf-16le", "utf-16be". Records are
    # UTF-8 whatever the file's encoding.
    encoding: Literal["auto", "utf-8", "utf-16le", "utf-16be"] = "auto"

    @property
    def label(self) -> str:
        """How logs and status name this input."""
        return self.name or f"{self.topic}:{','.join(self.paths)}"

    @property
    def container(self) -> str | None:
        """The container log format whose fragments are joined (``None``: no joining)."""
        return self.parser if self.join_partial and self.parser in CONTAINER_FORMATS else None

    def multiline_config(self) -> MultilineConfig | None:
        """The grouping config, ``None`` for one record per line."""
        if self.multiline is None:
            return None
        if isinstance(self.multiline, str):
            return MultilineSettings(preset=self.multiline).to_config()
        return self.multiline.to_config()


class TlsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """TLS to the collectors. ``ca`` alone verifies the server; ``cert``+``key`` add a client
    certificate. ``enabled`` defaults to on as soon as any file is set."""

    enabled: bool | None = None
    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    @property
    def on(self) -> bool:
        """Whether to speak TLS."""
        if self.enabled is not None:
            return self.enabled
        return bool(self.ca or self.cert)


class ShipperConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The whole ``shipper.toml`` (see ``config/shipper.toml`` for every key, commented)."""

    inputs: list[InputConfig] = []
    collectors: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_COLLECTOR])
    token: str = ""
    tls: TlsConfig = TlsConfig()
    state_dir: str = DEFAULT_STATE_DIR
    shipper_id: str = ""
    host: str = ""
    # Batches: text per batch, and how long the first record may wait for more.
    # With 4 MiB (and a 32 MiB memory queue, two batches built ahead) a clf shipper's peak RSS
    # was ~90 MB; with these defaults ~56 MB at the same lines/s (bench/shipper.py).
    batch_bytes: int = 2 << 20
    linger_s: float = 1.0
    window: int = 8
    # Lines.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    partial_line_timeout_s: float = 5.0
    read_buffer_bytes: int = 256 << 10
    # Builder processes that parse, build and compress batches on other cores (0: a thread
    # of this process does; see ``shipper.building`` and config/shipper.toml).
    builders: int = 0
    # Memory and disk bounds.
    memory_queue_bytes: int = 8 << 20
    spool_max_bytes: int = 1 << 30
    max_open_files: int = 1024
    # Files.
    rescan_interval_s: float = 10.0
    rotated_grace_s: float = 5.0
    close_inactive_s: float = 300.0
    # Housekeeping.
    checkpoint_interval_s: float = 1.0
    status_interval_s: float = 1.0
    shutdown_timeout_s: float = 10.0
    on_state_loss: Literal["end", "beginning"] = "end"
    # A lasting problem (files that cannot be read, checkpoints that cannot be written) is
    # logged when it starts, then at most once per this many seconds.
    problem_log_interval_s: float = 60.0
    metrics_listen: str = ""
    # Tests only: keep reconnect backoff short ((low, high) seconds).
    reconnect_backoff_s: tuple[float, float] = (0.1, 5.0)

    def hostname(self) -> str:
        """``host``, or this machine's name."""
        return self.host or socket.gethostname()

    def check(self) -> None:
        """Cross-key checks msgspec cannot express; raises ``InvalidArgument`` on the first."""
        for _, _, sentence in self._checks():
            raise InvalidArgument(sentence)

    def problems(self) -> Iterator[tuple[str, str]]:
        """Every cross-key problem as ``(key path, message)``, e.g. ``("inputs[1].topic",
        "invalid topic name ...")``: what ``wharf config check`` lists, where ``check()``
        stops at the first."""
        for path, message, _ in self._checks():
            yield path, message

    def _checks(self) -> Iterator[tuple[str, str, str]]:
        """``(key path, message, sentence)`` per problem, in ``check()``'s order. The sentence
        is the text ``check()`` has always raised; most are ``"path: message"``."""
        if not self.collectors:
            yield _problem("collectors", "at least one HOST:PORT is needed")
        if not self.inputs:
            yield _problem(
                "inputs",
                "no [[inputs]] table: the shipper would follow no file (add one with paths and "
                "topic)",
            )
        for i, addr in enumerate(self.collectors):
            message = host_port_problem(addr)
            if message is not None:
                yield f"collectors[{i}]", message, f"collectors: {message}"
        if self.metrics_listen:
            message = host_port_problem(self.metrics_listen)
            if message is not None:
                yield _problem("metrics_listen", message)
        positive = {
            "batch_bytes": self.batch_bytes,
            "window": self.window,
            "max_line_bytes": self.max_line_bytes,
            "read_buffer_bytes": self.read_buffer_bytes,
            "memory_queue_bytes": self.memory_queue_bytes,
            "max_open_files": self.max_open_files,
            "linger_s": self.linger_s,
            "rescan_interval_s": self.rescan_interval_s,
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "status_interval_s": self.status_interval_s,
            "problem_log_interval_s": self.problem_log_interval_s,
        }
        for key, value in positive.items():
            if value <= 0:
                yield _problem(key, f"must be positive, got {value}", sep=" ")
        if not 0 <= self.builders <= MAX_BUILDERS:
            yield _problem(
                "builders",
                f"must be 0 to {MAX_BUILDERS} (0: build in a thread), got {self.builders}",
                sep=" ",
            )
        if self.spool_max_bytes < 0:
            yield _problem("spool_max_bytes", "must be >= 0 (0: no spool)", sep=" ")
        if self.max_line_bytes > 32 << 20:
            yield _problem("max_line_bytes", "above 32 MiB would not fit in a batch", sep=" ")
        if bool(self.tls.cert) != bool(self.tls.key):
            given, other = ("cert", "key") if self.tls.cert else ("key", "cert")
            yield (
                f"tls.{given}",
                f"must be given together with tls.{other}",
                "tls.cert and tls.key must be given together",
            )
        names: set[str] = set()
        for i, inp in enumerate(self.inputs):
            yield from _input_checks(f"inputs[{i}]", inp, names)

    def producer_id(self, state_dir: Path) -> bytes:
        """The 16-byte shipper id: from the config, else generated once into ``state_dir``."""
        if self.shipper_id:
            try:
                return uuid.UUID(self.shipper_id).bytes
            except ValueError:
                return uuid.uuid5(uuid.NAMESPACE_URL, f"wharf:{self.shipper_id}").bytes
        path = state_dir / "shipper_id"
        try:
            return uuid.UUID(path.read_text().strip()).bytes
        except FileNotFoundError:
            pass
        except ValueError as exc:
            raise InvalidArgument(
                f"{path}: not a UUID; fix or remove it (a new id re-ships nothing, but the "
                "collector then cannot drop resends of batches sent under the old id)"
            ) from exc
        new = uuid.uuid4()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{new}\n")
        tmp.replace(path)
        return new.bytes

    def ssl_context(self) -> ssl.SSLContext | None:
        """Client TLS context, or ``None`` for plain TCP."""
        if not self.tls.on:
            return None
        ctx = ssl.create_default_context(cafile=self.tls.ca or None)
        if self.tls.cert:
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
        return ctx


def _problem(path: str, message: str, sep: str = ": ") -> tuple[str, str, str]:
    """A problem whose ``check()`` sentence is the path, ``sep``, then the message."""
    return path, message, f"{path}{sep}{message}"


def _input_checks(where: str, inp: InputConfig, names: set[str]) -> Iterator[tuple[str, str, str]]:
    """The problems of one ``[[inputs]]`` table at key path ``where``; ``names`` collects the
    input names seen so far (a name used twice is a problem of its second use)."""
    if not inp.paths:
        yield _problem(f"{where}.paths", "at least one glob is needed")
    for j, p in enumerate(inp.paths):
        if not Path(p).is_absolute():
            message = f"{p!r} is not an absolute path"
            yield f"{where}.paths[{j}]", message, f"{where}.paths: {message}"
    try:
        validate_topic(inp.topic)
    except Exception as exc:
        yield _problem(f"{where}.topic", str(exc))
    try:
        get_parser(inp.parser, **inp.parser_options)
    except (ValueError, TypeError) as exc:
        yield _problem(f"{where}.parser", str(exc))
    try:
        inp.multiline_config()
    except ValueError as exc:
        yield _problem(f"{where}.multiline", str(exc))
    if inp.container is not None and inp.encoding not in ("auto", "utf-8"):
        yield _problem(
            f"{where}.encoding",
            f"container logs ({inp.parser}) are UTF-8, not {inp.encoding}",
        )
    if inp.multiline is not None and inp.container is not None:
        yield _problem(
            f"{where}.multiline",
            f"not supported with parser {inp.parser!r}, whose fragments are joined into whole "
            "lines already (join_partial = false turns that off)",
        )
    if inp.name:
        if inp.name in names:
            yield _problem(f"{where}.name", f"{inp.name!r} is used twice")
        names.add(inp.name)


def parse_config(text: str, source: str = "<config>") -> ShipperConfig:
    """Decode and check TOML text; errors start with ``source`` and name the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{source}: invalid TOML: {exc}") from exc
    try:
        cfg = msgspec.convert(data, ShipperConfig)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"{source}: {exc}") from exc
    try:
        cfg.check()
    except InvalidArgument as exc:
        raise InvalidArgument(f"{source}: {exc}") from exc
    return cfg


def load_config(path: Path) -> ShipperConfig:
    """Read, decode and check ``shipper.toml``."""
    return parse_config(read_config_text(path), str(path))
