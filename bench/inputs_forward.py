"""Fluent forward input benchmark: records/s from forward clients into the forward input, until
the records are durable.

Run: ``.venv/bin/python bench/inputs_forward.py [--records 200000] [--anchor]``. Prints one
JSON object; ``--anchor`` adds rsyslog's ``imtcp`` → ``omfile`` fed the syslog bench's stream
of the same lines, and each case's ratio to it (``bench/inputs.py`` does this for every input).

The collector runs as its own process (``wharf collector run``, fsync "always" with group
commit, as in production) with a forward input on loopback. The clients are this process, one
thread per connection; every message is encoded before the clock starts (real access-log lines,
~235 bytes, as Docker's fluentd driver and Fluent Bit's tail send them: ``{"log": line,
"source": "stdout", "container_name": ..., "host": ...}`` with an EventTime), so the measure
is the input's: reading, decoding, mapping, batching, compressing, appending and fsyncing.

Cases:

- ``packed-acked``: PackedForward messages of ``--batch`` events (Fluent Bit's shape) with a
  ``chunk`` each, the next one sent when the ack came (as Fluent Bit and fluentd with
  ``require_ack_response`` do): records/s is records over the time to the last ack (an ack
  means durable);
- ``packed-acked-4conn``: the same on four connections (four hosts: the topic's partitions);
- ``compressed-acked``: CompressedPackedForward (gzip), one connection;
- ``message-noack``: Message mode, one event per message, no ack (fluent-logger's default):
  records/s is records over the time until ``wharf_input_stored_total`` counts them all.

The collector's CPU seconds over each case give records per CPU second, steadier than the
wall clock on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
from inputs import LOG, cpu_seconds, rsyslog_anchor, syslog_stream  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.harness import CollectorProcess  # noqa: E402
from tests.inputs.conftest import inputs_toml  # noqa: E402
from tests.inputs.forward_client import event_time, message  # noqa: E402

# (name, mode, connections, acked)
CASES: list[tuple[str, str, int, bool]] = [
    ("packed-acked", "PackedForward", 1, True),
    ("packed-acked-4conn", "PackedForward", 4, True),
    ("compressed-acked", "CompressedPackedForward", 1, True),
    ("message-noack", "Message", 1, False),
]
DRAIN_S = 300.0  # the longest a case may take to store what it was sent
POLL_S = 0.02


def _stored(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "wharf_input_stored_total" and s.labels.get("input") == "forward":
                return int(s.value)
    return 0


def _messages(mode: str, n: int, batch: int, host: str, lines: Sequence[str]) -> list[bytes]:
    """``n`` events of real lines as ``mode`` messages (``batch`` events each, one for
    Message); acked cases carry a chunk id per message."""
    base = time.time_ns()
    out: list[bytes] = []
    per = 1 if mode == "Message" else batch
    for start in range(0, n, per):
        events = [
            (
                event_time(base + i * 1000),
                {
                    "log": lines[i % len(lines)],
                    "source": "stdout",
                    "container_name": f"/web-{i % 7}",
                    "host": host,
                },
            )
            for i in range(start, min(start + per, n))
        ]
        chunk = None if mode == "Message" else f"{host}-{start}"
        out.append(message(mode, "docker.web", events, chunk=chunk))
    return out


def _send(port: int, messages: list[bytes], acked: bool, errors: list[BaseException]) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=DRAIN_S) as sock:
            # As the Python fluent-logger does: without it, the end of each message waits
            # for the collector's delayed ACK (Nagle), ~40 ms per acked message.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not acked:
                sock.sendall(b"".join(messages))
                return
            unpacker = msgpack.Unpacker(raw=False)
            for data in messages:
                sock.sendall(data)
                while next(unpacker, None) is None:
                    got = sock.recv(4096)
                    if not got:
                        raise ConnectionError("the collector closed the connection")
                    unpacker.feed(got)
    except (OSError, ConnectionError) as exc:
        errors.append(exc)


def _case(
    proc: CollectorProcess, name: str, mode: str, conns: int, acked: bool, n: int, batch: int
) -> dict[str, Any]:
    lines = LOG.read_text().splitlines()
    per = n // conns
    payloads = [_messages(mode, per, batch, f"web-{c}", lines) for c in range(conns)]
    port = proc.input_ports["forward"]
    before = _stored(proc.url)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_send, args=(port, p, acked, errors)) for p in payloads]
    cpu0 = cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    want = before + per * conns
    if acked:
        for t in threads:
            t.join(DRAIN_S)
        stored = _stored(proc.url)
    else:
        deadline = time.monotonic() + DRAIN_S
        stored = before
        while stored < want and time.monotonic() < deadline and not errors:
            time.sleep(POLL_S)
            stored = _stored(proc.url)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(proc.pid) - cpu0
    for t in threads:
        t.join()
    if errors or stored != want:
        raise SystemExit(f"{name}: {stored - before} of {per * conns} stored ({errors})")
    total = per * conns
    return {
        "case": name,
        "mode": mode,
        "connections": conns,
        "acked": acked,
        "events_per_message": 1 if mode == "Message" else batch,
        "records": total,
        "wire_mb": round(sum(len(m) for p in payloads for m in p) / 1e6, 1),
        "seconds": round(elapsed, 3),
        "records_per_s": round(total / elapsed),
        "collector_cpu_s": round(cpu, 2),
        "records_per_cpu_s": round(total / cpu) if cpu else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case on one collector; one JSON-able dict (``bench/inputs.py`` calls this)."""
    records = int(getattr(args, "records", 200_000))
    batch = int(getattr(args, "batch", 1000))
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-forward-", dir=ROOT / "bench" / "out"))
    config = work / "collector.toml"
    config.write_text(
        inputs_toml([{"type": "forward", "name": "forward", "listen": "127.0.0.1:0"}])
    )
    proc = CollectorProcess(work / "data", args=["--config", str(config)], log=work / "log")
    try:
        proc.start()
        cases = [_case(proc, *case, records, batch) for case in CASES]
        proc.stop()
    finally:
        proc.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"bench": "inputs_forward", "cpus": os.cpu_count(), "fsync": "always", "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=200_000, help="per case")
    ap.add_argument("--batch", type=int, default=1000, help="events per packed message")
    ap.add_argument("--anchor", action="store_true", help="also run rsyslog imtcp -> omfile")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    args = ap.parse_args()
    result = run(args)
    if args.anchor:
        work = Path(tempfile.mkdtemp(prefix="wharf-bench-forward-anchor-"))
        try:
            anchor = rsyslog_anchor(syslog_stream(args.records), args.records, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result["anchor"] = anchor
        base = anchor.get("records_per_s")
        for case in result["cases"]:
            case["ratio_to_anchor"] = round(case["records_per_s"] / base, 3) if base else None
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
