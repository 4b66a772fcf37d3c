"""Where ``wharf replay`` sends records: the ``--sink`` argument, parsed and checked up front so a
typo fails before anything is read.

    stdout | -                      the terminal or a pipe
    file:PATH | file:///ABS/PATH    appended to a file
    http://URL | https://URL        NDJSON batches POSTed to a URL
    tcp://HOST:PORT                 newline-delimited lines on a TCP connection
    wharf://HOST[:PORT]/TOPIC       another topic, through a collector's native ingest port
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from wharf.errors import InvalidArgument, InvalidTopicName
from wharf.topics import validate_topic

SinkKind = Literal["stdout", "file", "http", "tcp", "wharf"]

# The collector's native ingest port (DESIGN: "Defaults and contracts").
DEFAULT_WHARF_PORT: Final = 7070

_FORMS: Final = (
    "use stdout, file:PATH, http(s)://HOST[:PORT]/PATH, tcp://HOST:PORT or wharf://HOST:PORT/TOPIC"
)


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A parsed ``--sink``. Only the fields of its ``kind`` are set."""

    kind: SinkKind
    text: str
    path: str = ""  # file
    url: str = ""  # http, https
    host: str = ""  # tcp, wharf
    port: int = 0  # tcp, wharf
    topic: str = ""  # wharf

    @property
    def address(self) -> str:
        """``HOST:PORT`` (IPv6 hosts in brackets) for tcp and wharf sinks."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_sink(text: str) -> SinkSpec:
    """Parse and check a ``--sink`` value; ``InvalidArgument`` says what is wrong."""
    s = text.strip()
    if s in ("stdout", "-"):
        return SinkSpec("stdout", s)
    if s.startswith("file:"):
        return _file(s)
    scheme = s.partition("://")[0].lower() if "://" in s else ""
    if scheme in ("http", "https"):
        return _http(s)
    if scheme == "tcp":
        host, port = _host_port(s, default_port=None)
        return SinkSpec("tcp", s, host=host, port=port)
    if scheme == "wharf":
        return _wharf(s)
    raise InvalidArgument(f"unknown sink {text!r}: {_FORMS}")


def _file(s: str) -> SinkSpec:
    rest = s.removeprefix("file:")
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise InvalidArgument(
                f"sink {s!r}: a file URL needs an absolute path (file:///var/tmp/out.ndjson); "
                "or write file:relative/path"
            )
    if not rest or rest.endswith("/"):
        raise InvalidArgument(f"sink {s!r}: give a file path, like file:/tmp/replay.ndjson")
    if "\x00" in rest:
        raise InvalidArgument(f"sink {s!r}: the path holds a NUL byte")
    return SinkSpec("file", s, path=rest)


def _http(s: str) -> SinkSpec:
    parts = urlsplit(s)
    if not parts.hostname:
        raise InvalidArgument(f"sink {s!r}: the URL has no host")
    try:
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        raise InvalidArgument(f"sink {s!r}: the URL has an invalid port") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument(
            f"sink {s!r}: credentials in the URL would be printed in progress and resume lines; "
            "pass them with --sink-header 'Authorization: ...'"
        )
    if parts.fragment:
        raise InvalidArgument(f"sink {s!r}: a URL fragment (#...) is never sent; remove it")
    return SinkSpec("http", s, url=s)


def _host_port(s: str, default_port: int | None) -> tuple[str, int]:
    parts = urlsplit(s)
    if not parts.hostname:
        raise InvalidArgument(f"sink {s!r}: no host; write {parts.scheme}://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise InvalidArgument(f"sink {s!r}: invalid port") from None
    if port is None or port == 0:
        if default_port is None:
            raise InvalidArgument(f"sink {s!r}: give a port, like {parts.scheme}://HOST:9000")
        port = default_port
    if parts.query or parts.fragment or parts.username is not None:
        raise InvalidArgument(f"sink {s!r}: only {parts.scheme}://HOST:PORT is understood")
    if parts.scheme == "tcp" and parts.path not in ("", "/"):
        raise InvalidArgument(f"sink {s!r}: a tcp sink takes no path")
    return parts.hostname, port


def _wharf(s: str) -> SinkSpec:
    host, port = _host_port(s, DEFAULT_WHARF_PORT)
    topic = urlsplit(s).path.strip("/")
    if not topic:
        raise InvalidArgument(f"sink {s!r}: name the topic to write to: wharf://HOST:PORT/TOPIC")
    try:
        validate_topic(topic)
    except InvalidTopicName as exc:
        raise InvalidArgument(f"sink {s!r}: {exc}") from None
    return SinkSpec("wharf", s, host=host, port=port, topic=topic)
