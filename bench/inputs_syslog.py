"""Syslog input benchmark: records/s from a generator over TCP into the syslog input, until
the collector counts them durable.

Run: ``.venv/bin/python bench/inputs_syslog.py [--records 200000] [--anchor]``. Prints one JSON
object; ``--anchor`` adds rsyslog's ``imtcp`` → ``omfile`` fed the same stream, and the ratio
(``bench/inputs.py`` does this for every input at once).

The collector runs as its own process (``wharf collector run``, fsync "always" with group
commit, as in production) with a TCP syslog input on loopback. The generator is this process:
the stream is built before the clock starts (``inputs.syslog_stream``: real access-log lines,
~235 bytes, in rsyslog's shapes) and written with ``sendall`` by one thread per connection, so
the measure is the input's: reading, framing, parsing, batching, compressing, appending and
fsyncing. Records/s is records over the time from the first byte sent to the collector's
``wharf_input_stored_total`` reaching the count (polled every 20 ms). The collector's CPU
seconds over the run give records per CPU second, steadier than the wall clock on a shared box.

Cases: octet-counted RFC 5424 on one connection (what rsyslog's omfwd sends with
``TCP_Framing="octet-counted"`` and ``RSYSLOG_SyslogProtocol23Format``), the same on four
connections (four hosts, spread over the topic's partitions), and LF-framed RFC 3164 (omfwd's
defaults).
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inputs import cpu_seconds, rsyslog_anchor, syslog_stream  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.harness import CollectorProcess  # noqa: E402
from tests.inputs.conftest import inputs_toml  # noqa: E402

CASES = [("tcp-octet-rfc5424", "octet", 1), ("tcp-octet-rfc5424-4conn", "octet", 4)]
CASES.append(("tcp-lf-rfc3164", "lf", 1))
DRAIN_S = 300.0  # the longest a case may take to store what it was sent
POLL_S = 0.02


def _stored(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "wharf_input_stored_total" and s.labels.get("input") == "syslog":
                return int(s.value)
    return 0


def _case(proc: CollectorProcess, name: str, framing: str, conns: int, n: int) -> dict[str, Any]:
    per = n // conns
    streams = [syslog_stream(per, framing, host=f"web-{c}") for c in range(conns)]
    port = proc.input_ports["syslog"]
    before = _stored(proc.url)
    errors: list[BaseException] = []

    def send(data: bytes) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=DRAIN_S) as sock:
                sock.sendall(data)
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in streams]
    cpu0 = cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    want = before + per * conns
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
        "connections": conns,
        "records": total,
        "wire_mb": round(sum(len(s) for s in streams) / 1e6, 1),
        "seconds": round(elapsed, 3),
        "records_per_s": round(total / elapsed),
        "collector_cpu_s": round(cpu, 2),
        "records_per_cpu_s": round(total / cpu) if cpu else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every case on one collector; one JSON-able dict (``bench/inputs.py`` calls this)."""
    records = int(getattr(args, "records", 200_000))
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-syslog-", dir=ROOT / "bench" / "out"))
    config = work / "collector.toml"
    config.write_text(
        inputs_toml(
            [{"type": "syslog", "name": "syslog", "protocol": "tcp", "listen": "127.0.0.1:0"}]
        )
    )
    proc = CollectorProcess(work / "data", args=["--config", str(config)], log=work / "log")
    try:
        proc.start()
        cases = [_case(proc, *case, records) for case in CASES]
        proc.stop()
    finally:
        proc.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"bench": "inputs_syslog", "cpus": os.cpu_count(), "fsync": "always", "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=200_000, help="per case")
    ap.add_argument("--anchor", action="store_true", help="also run rsyslog imtcp -> omfile")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    args = ap.parse_args()
    result = run(args)
    if args.anchor:
        work = Path(tempfile.mkdtemp(prefix="wharf-bench-syslog-anchor-"))
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
