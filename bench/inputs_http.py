"""HTTP inputs benchmark: records/s through OTLP/HTTP logs and Loki push, end to end (request
read, decoded, appended, durable, then the 2xx), with rsyslog's ``imtcp`` → file in the same run
as the anchor.

Run: ``.venv/bin/python bench/inputs_http.py [--seconds 5] [--batch 1000] [--clients 4]
[--records 200000]``.
Prints one JSON object. ``bench/inputs.py`` runs ``run(args)`` with the other inputs'.

The collector runs as its own process (``wharf collector run``, fsync "always" with group
commit, as in production) with an ``otlp`` and a ``loki`` input on loopback. Each case has
``--clients`` concurrent keep-alive clients POSTing pre-built requests of ``--batch`` records
(real lines: ``../shared/data/logs/apache_combined.log``, ~235 bytes each, one host per
client), each waiting for its answer before the next, for ``--seconds``; records/s counts only
acknowledged records, and the collector's own ``stored`` count must agree at the end.

The anchor (``main`` only; ``bench/inputs.py`` runs it once for every input): bench/inputs.py's
rsyslogd ``imtcp`` → ``omfile`` fed ``--records`` octet-counted RFC 5424 messages of the same
lines over one TCP connection, and each case's ratio to it. rsyslog writes text and
acknowledges nothing; these inputs decode a structured protocol, build compressed columnar
batches and fsync before answering.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import cramjam  # noqa: E402
from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402

from collector.inputs.proto.push_pb2 import EntryAdapter, PushRequest  # noqa: E402
from tests.harness import CollectorProcess  # noqa: E402
from tests.inputs.conftest import inputs_toml  # noqa: E402
from tests.inputs.http_inputs import input_counts  # noqa: E402

LOG = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"
REQUESTS_PER_CLIENT = 8  # distinct bodies each client cycles through
T0 = 1_700_000_000_000_000_000


def _otlp(lines: list[str], host: str) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(
        [
            KeyValue(key="service.name", value=AnyValue(string_value="nginx")),
            KeyValue(key="host.name", value=AnyValue(string_value=host)),
        ]
    )
    records = rl.scope_logs.add().log_records
    for i, line in enumerate(lines):
        records.add(
            time_unix_nano=T0 + i,
            severity_number=9,
            body=AnyValue(string_value=line),
            attributes=[KeyValue(key="seq", value=AnyValue(int_value=i))],
        )
    return req


def _loki(lines: list[str], host: str) -> PushRequest:
    req = PushRequest()
    s = req.streams.add(labels=f'{{job="nginx", host="{host}", level="info"}}')
    for i, line in enumerate(lines):
        s.entries.append(EntryAdapter(timestamp=Timestamp(seconds=T0 // 10**9, nanos=i), line=line))
    return req


def _loki_json(lines: list[str], host: str) -> bytes:
    values = [[str(T0 + i), line] for i, line in enumerate(lines)]
    doc = {"streams": [{"stream": {"job": "nginx", "host": host}, "values": values}]}
    return json.dumps(doc).encode()


def _bodies(kind: str, lines: list[str], host: str) -> tuple[bytes, dict[str, str]]:
    """One request body of ``lines`` in the case's encoding, and its headers."""
    protobuf = {"Content-Type": "application/x-protobuf"}
    if kind == "otlp-protobuf":
        return _otlp(lines, host).SerializeToString(), protobuf
    if kind == "otlp-protobuf-gzip":
        data = gzip.compress(_otlp(lines, host).SerializeToString(), compresslevel=1)
        return data, {**protobuf, "Content-Encoding": "gzip"}
    if kind == "otlp-json":
        from google.protobuf import json_format  # noqa: PLC0415

        text = json_format.MessageToJson(_otlp(lines, host), indent=None)
        return text.encode(), {"Content-Type": "application/json"}
    if kind == "loki-protobuf-snappy":
        data = bytes(cramjam.snappy.compress_raw(_loki(lines, host).SerializeToString()))
        return data, protobuf
    if kind == "loki-json":
        return _loki_json(lines, host), {"Content-Type": "application/json"}
    raise ValueError(kind)


async def _case(
    kind: str, port: int, path: str, lines: list[str], batch: int, clients: int, seconds: float
) -> dict[str, Any]:
    prepared = []
    for c in range(clients):
        bodies = []
        for r in range(REQUESTS_PER_CLIENT):
            start = ((c * REQUESTS_PER_CLIENT + r) * batch) % len(lines)
            chunk = [lines[(start + i) % len(lines)] for i in range(batch)]
            bodies.append(await asyncio.to_thread(_bodies, kind, chunk, f"web-{c}"))
        prepared.append(bodies)
    url = f"http://127.0.0.1:{port}{path}"
    acked = 0
    sent_bytes = 0
    latencies: list[float] = []

    async def client(bodies: list[tuple[bytes, dict[str, str]]], deadline: float) -> None:
        nonlocal acked, sent_bytes
        async with aiohttp.ClientSession() as session:
            k = 0
            while time.perf_counter() < deadline:
                data, headers = bodies[k % len(bodies)]
                k += 1
                t = time.perf_counter()
                async with session.post(url, data=data, headers=headers) as resp:
                    await resp.read()
                    if resp.status in (200, 204):
                        acked += batch
                        sent_bytes += len(data)
                        latencies.append(time.perf_counter() - t)
                    elif resp.status != 503:
                        raise SystemExit(f"{kind}: HTTP {resp.status} {await resp.text()}")

    t0 = time.perf_counter()
    await asyncio.gather(*(client(b, t0 + seconds) for b in prepared))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "case": kind,
        "records_per_request": batch,
        "clients": clients,
        "records": acked,
        "records_per_s": round(acked / elapsed),
        "wire_mb_per_s": round(sent_bytes / elapsed / 1e6, 1),
        "request_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "seconds": round(elapsed, 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case, then the anchor; one JSON-able dict (``bench/inputs.py`` calls this)."""
    seconds = float(getattr(args, "seconds", 5.0))
    batch = int(getattr(args, "batch", 1000))
    clients = int(getattr(args, "clients", 4))
    lines = LOG.read_text().splitlines()
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-inputs-http-", dir=ROOT / "bench" / "out"))
    config = work / "collector.toml"
    config.write_text(
        inputs_toml(
            [
                {"type": "otlp", "name": "otlp", "listen": "127.0.0.1:0"},
                {"type": "loki", "name": "loki", "listen": "127.0.0.1:0"},
            ]
        )
    )
    proc = CollectorProcess(work / "data", args=["--config", str(config)], log=work / "log")
    cases = [
        ("otlp-protobuf", "otlp", "/v1/logs"),
        ("otlp-protobuf-gzip", "otlp", "/v1/logs"),
        ("otlp-json", "otlp", "/v1/logs"),
        ("loki-protobuf-snappy", "loki", "/loki/api/v1/push"),
        ("loki-json", "loki", "/loki/api/v1/push"),
    ]
    results = []
    try:
        proc.start()
        acked = {"otlp": 0, "loki": 0}
        for kind, name, path in cases:
            port = proc.input_ports[name]
            result = asyncio.run(_case(kind, port, path, lines, batch, clients, seconds))
            acked[name] += result["records"]
            results.append(result)
        for name, n in acked.items():
            stored = input_counts(proc, name)["stored"]
            if stored != n:
                raise SystemExit(f"{name}: {n} records acknowledged but {stored} stored")
        proc.stop()
    finally:
        proc.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"bench": "inputs_http", "cpus": os.cpu_count(), "fsync": "always", "cases": results}


def with_anchor(result: dict[str, Any], records: int) -> dict[str, Any]:
    """``result`` with bench/inputs.py's rsyslog anchor fed ``records`` messages, and each
    case's ratio to it (bench/inputs.py does the same for every input at once)."""
    from inputs import rsyslog_anchor, syslog_stream  # noqa: PLC0415 (bench/inputs.py)

    work = Path(tempfile.mkdtemp(prefix="wharf-bench-anchor-", dir=ROOT / "bench" / "out"))
    try:
        anchor = rsyslog_anchor(syslog_stream(records), records, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = anchor.get("records_per_s")
    for case in result["cases"]:
        case["ratio_to_anchor"] = round(case["records_per_s"] / base, 3) if base else None
    return {**result, "anchor": anchor}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="per case")
    ap.add_argument("--batch", type=int, default=1000, help="records per request")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients per case")
    ap.add_argument("--records", type=int, default=200_000, help="messages fed to the anchor")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    args = ap.parse_args()
    print(json.dumps(with_anchor(run(args), args.records), indent=2))


if __name__ == "__main__":
    main()
