"""What the HTTP API tests share besides the harness (whose ``LiveServer`` serves the API):
loaders for the shared sample logs, a raw HTTP helper for status checks, a bad disk."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from collector.config import AuthSettings, CollectorConfig
from collector.storage import Store, TopicConfig
from parsers import get_parser
from wharf import batch as wb
from wharf.record import Record
from wharf.topics import partition_for

LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "logs"
HOSTS = ("web-1", "web-2", "web-4")  # partitions 1, 0 and 2 of 3
T0 = 1_700_000_000_000_000_000


def auth_config(read: list[str], write: list[str]) -> CollectorConfig:
    return CollectorConfig(auth=AuthSettings(read_tokens=read, write_tokens=write))


def log_lines(name: str) -> list[str]:
    """The lines of a sample log as GNU grep sees them (split on newlines only)."""
    text = (LOGS / name).read_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def log_records(name: str, parser: str) -> list[Record]:
    """Parsed records of a sample log, spread over ``HOSTS`` round-robin. A line without a
    timestamp takes its predecessor's (as a shipper's read time would be close to it)."""
    p = get_parser(parser)
    out: list[Record] = []
    for i, line in enumerate(log_lines(name)):
        parsed = p.parse(line)
        out.append(
            Record(
                ts=parsed.ts if parsed.ts is not None else (out[-1].ts if out else T0),
                line=line,
                host=HOSTS[i % len(HOSTS)],
                source=f"/var/log/{name}",
                fields=parsed.fields,
                level=parsed.level,
            )
        )
    return out


def load(
    store: Store, topic: str, records: list[Record], *, partitions: int = 3, per_batch: int = 400
) -> None:
    """Create ``topic`` and append ``records``, each host to its partition, in batches."""
    store.create_topic(topic, TopicConfig(partitions=partitions))
    by_part: dict[int, list[Record]] = {}
    for r in records:
        by_part.setdefault(partition_for(r.host, partitions), []).append(r)
    for p, recs in sorted(by_part.items()):
        for i in range(0, len(recs), per_batch):
            store.append(topic, p, wb.build(recs[i : i + per_batch]))


def request(
    url: str,
    method: str,
    path: str,
    params: list[tuple[str, Any]] | None = None,
    body: object = None,
    token: str | None = None,
) -> tuple[int, Any]:
    """One request; ``(status, decoded JSON body or list of NDJSON objects)``."""
    host_port = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host_port, timeout=30)
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    target = path + ("?" + urlencode(params) if params else "")
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("Content-Type", "")
    finally:
        conn.close()
    if "ndjson" in ctype:
        return resp.status, [json.loads(line) for line in raw.splitlines() if line]
    if "json" in ctype:
        return resp.status, json.loads(raw)
    return resp.status, raw.decode()


def ndjson(url: str, path: str, params: list[tuple[str, Any]] | None = None) -> list[Any]:
    """A streamed answer that must succeed, as a list of objects."""
    status, body = request(url, "GET", path, params)
    assert status == 200, body
    assert isinstance(body, list)
    return body


def hits_of(lines: list[Any]) -> Iterator[dict[str, Any]]:
    """The record lines of a search answer (the final ``done`` line checked and dropped)."""
    assert lines and lines[-1].get("done") is True, lines[-1:]
    return iter(lines[:-1])


def damage_middle(store: Store, topic: str) -> None:
    """Flip one byte in the middle of partition 0's first segment (a bad disk)."""
    seg = next((store.data_dir / "topics" / topic / "0").glob("*.seg"))
    size = seg.stat().st_size
    with seg.open("r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
