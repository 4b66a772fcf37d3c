"""Network inputs benchmark: records/s through every input, with rsyslog's own ``imtcp`` →
``omfile`` on the same machine in the same run as the anchor, and each case's ratio to it.

Run: ``.venv/bin/python bench/inputs.py [--seconds 5] [--records 200000] [--only syslog,http]``.
Prints one JSON object.

Every ``bench/inputs_*.py`` found is imported and its ``run(args) -> dict`` called with this
script's arguments (each takes what it knows with ``getattr`` and its own defaults: ``seconds``
for the request-driven HTTP cases, ``records`` for the stream-driven syslog cases). A case is a
dict with ``records_per_s`` (under ``cases``, or the module's result itself).

The anchor: rsyslogd (Debian's) with ``imtcp`` (``port="0"``, the port it got written to a
file: no race for a port) writing every message to a file with ``omfile``, fed exactly the
stream of the syslog input's octet-counted RFC 5424 case (``syslog_stream``) over one
connection; records/s is lines in the file over the time from the first byte sent to the last
line written. rsyslog parses the same messages and writes text without fsync or an index; the
inputs build compressed columnar batches and fsync them (``[storage] fsync = "always"``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

LOG = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"
RSYSLOG_START_S = 30.0  # rsyslogd starts in well under a second; this is for a loaded box
DRAIN_S = 300.0  # the longest a run may take to write what it was sent

ANCHOR_CONF = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="0" listenPortFileName="{portfile}")
action(type="omfile" file="{out}" template="RSYSLOG_FileFormat")
"""


def syslog_stream(records: int, framing: str = "octet", host: str = "web-1") -> bytes:
    """``records`` syslog messages carrying real access-log lines (~235 bytes), as rsyslog
    forwards them: ``octet`` is RFC 5424 in RFC 6587 octet counting with the template's
    newline counted (``RSYSLOG_SyslogProtocol23Format``, ``TCP_Framing="octet-counted"``);
    ``lf`` is RFC 3164 without year or zone, LF-framed (omfwd's defaults)."""
    lines = LOG.read_text().splitlines()
    out = bytearray()
    for i in range(records):
        line = lines[i % len(lines)]
        if framing == "octet":
            msg = (
                f"<14>1 2024-06-15T12:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}."
                f"{i % 1000:03d}000+00:00 {host} nginx {1000 + i % 50} - - {line}\n"
            ).encode()
            out += b"%d %s" % (len(msg), msg)
        else:
            out += f"<14>Jun 15 12:00:00 {host} nginx[{1000 + i % 50}]: {line}\n".encode()
    return bytes(out)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _count_lines(path: Path, state: list[int]) -> int:
    """Lines in ``path``, reading only what was appended since the last call."""
    if not path.exists():
        return state[1]
    with path.open("rb") as f:
        f.seek(state[0])
        data = f.read()
    state[0] += len(data)
    state[1] += data.count(b"\n")
    return state[1]


def rsyslog_anchor(payload: bytes, records: int, work: Path) -> dict[str, Any]:
    """rsyslogd imtcp → omfile fed ``payload`` (``records`` messages) over one connection."""
    name = "rsyslog imtcp -> omfile"
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        return {"anchor": name, "skipped": "rsyslogd is not installed"}
    d = work / "rsyslog-anchor"
    d.mkdir(parents=True)
    out, portfile = d / "out.log", d / "imtcp.port"
    (d / "rsyslog.conf").write_text(ANCHOR_CONF.format(work=d, portfile=portfile, out=out))
    with (d / "rsyslogd.log").open("wb") as log:
        proc = subprocess.Popen(
            [rsyslogd, "-n", "-f", str(d / "rsyslog.conf"), "-i", str(d / "rsyslogd.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + RSYSLOG_START_S
        while not (portfile.exists() and portfile.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                return {"anchor": name, "skipped": "rsyslogd did not start"}
            time.sleep(0.02)
        port = int(portfile.read_text())
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=DRAIN_S) as sock:
            sock.sendall(payload)
        state = [0, 0]
        deadline = time.monotonic() + DRAIN_S
        while _count_lines(out, state) < records and time.monotonic() < deadline:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(60)
    written = state[1]
    return {
        "anchor": name,
        "version": _rsyslog_version(rsyslogd),
        "records": written,
        "seconds": round(elapsed, 3),
        "records_per_s": round(written / elapsed),
        "cpu_s": round(cpu, 2),
        "records_per_cpu_s": round(written / cpu) if cpu else None,
        **({} if written == records else {"error": f"{written} of {records} lines written"}),
    }


def _rsyslog_version(exe: str) -> str | None:
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False).stdout
    return out.split()[1] if out else None


def discover() -> list[str]:
    """The ``inputs_*`` bench modules, by name."""
    return sorted(p.stem for p in BENCH.glob("inputs_*.py"))


def _cases(result: dict[str, Any]) -> list[dict[str, Any]]:
    cases = result.get("cases")
    if isinstance(cases, list):
        return [c for c in cases if isinstance(c, dict) and "records_per_s" in c]
    return [result] if "records_per_s" in result else []


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every input module's run, then the anchor; the ratio of each case to it."""
    only = {s.strip() for s in (args.only or "").split(",") if s.strip()}
    results: dict[str, Any] = {}
    for name in discover():
        if only and name.removeprefix("inputs_") not in only:
            continue
        module = importlib.import_module(name)
        results[name.removeprefix("inputs_")] = module.run(args)
    (BENCH / "out").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-inputs-", dir=BENCH / "out"))
    try:
        anchor = rsyslog_anchor(syslog_stream(args.records), args.records, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = anchor.get("records_per_s")
    ratios = [
        {
            "input": name,
            "case": case.get("case", name),
            "records_per_s": case["records_per_s"],
            "ratio_to_anchor": round(case["records_per_s"] / base, 3) if base else None,
        }
        for name, result in results.items()
        for case in _cases(result)
    ]
    return {
        "bench": "inputs",
        "cpus": os.cpu_count(),
        "anchor": anchor,
        "ratios": ratios,
        "inputs": results,
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="per request-driven case")
    ap.add_argument(
        "--records", type=int, default=200_000, help="per stream-driven case, and the anchor"
    )
    ap.add_argument("--only", default="", help="comma-separated inputs (syslog, http, ...)")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    return ap


def main() -> None:
    print(json.dumps(run(parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
