"""Where the shipper's memory goes: the parts of bench/shipper.py's peak RSS, one by one.

Run: ``.venv/bin/python bench/shipper_memory.py [--files 1000]``. Prints one JSON object on
stdout. Every number is the resident set (``VmRSS`` of ``/proc/PID/status``, MB) of a fresh
child process, so the parts do not disturb each other:

- ``interpreter``: ``python -c pass`` with and without ``site`` (the venv's ``.pth`` files).
- ``imports``: what each module adds, imported one after the other in the daemon's own order
  (``daemon_path``); and each of the libraries the daemon does *not* load, on its own over a
  bare interpreter (``not_in_daemon``: the CLI's typer/rich/``importlib.metadata``, aiohttp
  and prometheus_client, which only ``metrics_listen`` loads).
- ``daemon_idle``: ``wharf shipper run`` once ready (``READY=1`` on our ``$NOTIFY_SOCKET``),
  nothing to ship, no collector listening: with no file and with ``--files`` empty files, and
  with no file started through typer (``cli._app.build_app``, what every other command
  does) for the cost of the CLI; ``per_file_bytes`` is the difference over the files.
- ``per_batch``: what one batch of ``batch_bytes`` (2 MiB) of text holds in the reader (the
  parsed columns of a ``clf`` batch, by tracemalloc) and what building it takes (a zstd level 3
  context and its output).

The end-to-end peaks (raw, clf, 1,000 files, with lines/s) are bench/shipper.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "logs" / "apache_combined.log"
BATCH_BYTES = 2 << 20  # the shipper's default batch_bytes
READY_TIMEOUT_S = 60.0

# The daemon's imports in the order it makes them (each line: what it adds to those before).
DAEMON_PATH = [
    "logging",
    "ssl",
    "asyncio",
    "msgspec",
    "zstandard",
    "wharf.batch",
    "parsers.columnar",
    "shipper.daemon",
    "watchdog.observers",
    "cli.shipper_run",
]
NOT_IN_DAEMON = ["importlib.metadata", "typer", "rich.console", "aiohttp", "prometheus_client"]

_STATUS = """
def _rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
"""


def _child(code: str, *flags: str) -> Any:
    out = subprocess.run(
        [sys.executable, *flags, "-c", _STATUS + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return json.loads(out)


def interpreter() -> dict[str, float]:
    code = "import json; print(json.dumps(round(_rss(), 1)))"
    return {"with_site": _child(code), "no_site": _child(code, "-S")}


def imports() -> dict[str, Any]:
    steps = _child(
        "import importlib, json\n"
        "out, prev = {}, _rss()\n"
        f"for m in {DAEMON_PATH!r}:\n"
        "    importlib.import_module(m)\n"
        "    now = _rss()\n"
        "    out[m] = round(now - prev, 1)\n"
        "    prev = now\n"
        "out['total'] = round(prev, 1)\n"
        "print(json.dumps(out))"
    )
    alone = {
        m: _child(
            "import importlib, json\n"
            f"before = _rss(); importlib.import_module({m!r})\n"
            "print(json.dumps(round(_rss() - before, 1)))"
        )
        for m in NOT_IN_DAEMON
    }
    return {"daemon_path": steps, "not_in_daemon": alone}


def _daemon_rss(work: Path, files: int, via_typer: bool) -> float:
    """RSS (MB) of a shipper daemon once ready, following ``files`` empty files."""
    d = Path(tempfile.mkdtemp(dir=work))
    logs = d / "logs"
    logs.mkdir()
    for i in range(files):
        (logs / f"app-{i:04d}.log").touch()
    conf = d / "shipper.toml"
    # Port 9 (discard): nothing listens; the daemon starts and keeps trying.
    conf.write_text(
        'collectors = ["127.0.0.1:9"]\n'
        f"state_dir = {json.dumps(str(d / 'state'))}\n\n"
        f"[[inputs]]\npaths = [{json.dumps(str(logs / '*.log'))}]\n"
        'topic = "mem"\nparser = "raw"\n'
    )
    if via_typer:
        cmd = [
            sys.executable,
            "-c",
            "import sys; from cli._app import build_app; build_app('shipper')()",
            "shipper",
            "run",
            "--config",
            str(conf),
        ]
    else:
        cmd = [sys.executable, "-m", "cli", "shipper", "run", "--config", str(conf)]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(d / "notify.sock"))
    sock.settimeout(READY_TIMEOUT_S)
    env = {**os.environ, "NOTIFY_SOCKET": str(d / "notify.sock")}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"READY=1" not in sock.recv(65536).split(b"\n"):
            if time.monotonic() > deadline:
                raise RuntimeError("the shipper never said READY=1")
        time.sleep(2.0)  # its first status write and timers
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError("no VmRSS")
    finally:
        proc.terminate()
        proc.wait(60)
        sock.close()


def daemon_idle(files: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wharf-bench-mem-") as tmp:
        work = Path(tmp)
        none = _daemon_rss(work, 0, via_typer=False)
        many = _daemon_rss(work, files, via_typer=False)
        typer_none = _daemon_rss(work, 0, via_typer=True)
    return {
        "no_files": none,
        f"{files}_files": many,
        "per_file_bytes": round((many - none) * 1048576 / files) if files else None,
        "no_files_through_typer": typer_none,
    }


def per_batch() -> dict[str, Any]:
    return _child(
        "import json, tracemalloc, zstandard\n"
        "from parsers import get_parser\n"
        "from parsers.columnar import columnar_for\n"
        f"src = open({str(SOURCE)!r}, 'rb').read().splitlines()\n"
        "lines, size, i = [], 0, 0\n"
        f"while size < {BATCH_BYTES}:\n"
        "    line = src[i % len(src)]; lines.append(line); size += len(line) + 1; i += 1\n"
        "blob = b'\\n'.join(lines)\n"
        "blocks = columnar_for(get_parser('clf'))\n"
        "tracemalloc.start()\n"
        "block = blocks.parse_block(blob, len(lines), 0)\n"
        "held, peak = tracemalloc.get_traced_memory()\n"
        "tracemalloc.stop()\n"
        "before = _rss()\n"
        "ctx = zstandard.ZstdCompressor(level=3, write_content_size=True)\n"
        "out = ctx.compress(blob)\n"
        "print(json.dumps({\n"
        "    'text_mb': round(len(blob) / 1048576, 2), 'lines': len(lines),\n"
        "    'clf_parsed_columns_mb': round(held / 1048576, 1),\n"
        "    'clf_parse_peak_mb': round(peak / 1048576, 1),\n"
        "    'zstd_level3_context_mb': round(ctx.memory_size() / 1048576, 1),\n"
        "    'zstd_rss_added_mb': round(_rss() - before, 1),\n"
        "    'compressed_mb': round(len(out) / 1048576, 2),\n"
        "}))"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=1000, help="empty files for daemon_idle")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    args = ap.parse_args()
    print(
        json.dumps(
            {
                "bench": "shipper_memory",
                "unit": "MB of VmRSS unless the key says otherwise",
                "python": sys.version.split()[0],
                "interpreter": interpreter(),
                "imports": imports(),
                "daemon_idle": daemon_idle(args.files),
                "per_batch": per_batch(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
