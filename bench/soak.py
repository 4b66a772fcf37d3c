"""Soak benchmark: a well-behaved client's throughput on a quiet collector against the same under
every attack of ``tests/harness/attacks.py`` at once (idle and slow-header HTTP connections,
searches and tails nobody reads, ingest connections that never log in, 79 MiB frames left
unfinished, costly regular expressions).

Run: ``.venv/bin/python bench/soak.py [--lines 200000] [--rounds 3]``. Prints one JSON object.

Each round ships ``--lines`` lines with ``wharf ship`` (the shipper's send path, acked) and
then counts them with ``wharf grep -F -c``; the same rounds run on a quiet collector (the anchor)
and on a second one under attack, each a real ``wharf collector run`` process on loopback. The
ratio is attack/quiet time (the issue's bar: within 2x). The collectors' peak RSS is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import CollectorProcess  # noqa: E402
from tests.harness.attacks import Attack, Mix  # noqa: E402


def _write(path: Path, lines: int, round_: int) -> None:
    with path.open("w") as f:
        for i in range(lines):
            f.write(f"round={round_} n={i:07d} GET /api/items/{i} HTTP/1.1 200 {i % 977}\n")


def _peak_rss_mb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) // 1024
    return -1


def _rounds(col: CollectorProcess, files: list[Path], lines: int) -> dict[str, Any]:
    ship_s, grep_s = [], []
    for r, src in enumerate(files):
        t = time.perf_counter()
        col.ship("app", "raw", src)
        ship_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        done = col.wharf("grep", "-t", "app", "-F", "-c", f"round={r} ")
        grep_s.append(time.perf_counter() - t)
        if done.returncode != 0 or done.stdout.split()[-1] != str(lines):
            raise SystemExit(f"round {r}: grep -c said {done.stdout!r} {done.stderr!r}")
    total = sum(ship_s)
    return {
        "ship_s": [round(x, 3) for x in ship_s],
        "grep_s": [round(x, 3) for x in grep_s],
        "lines_per_s": round(lines * len(files) / total),
        "grep_s_total": round(sum(grep_s), 3),
        "rss_peak_mb": _peak_rss_mb(col.pid),
    }


def run(lines: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wharf-soak-") as tmp:
        base = Path(tmp)
        files = []
        for r in range(rounds):
            files.append(base / f"app-{r}.log")
            _write(files[-1], lines, r)
        out: dict[str, Any] = {"bench": "soak", "lines_per_round": lines, "rounds": rounds}
        with CollectorProcess(base / "quiet", log=base / "quiet.log") as col:
            col.start()
            out["quiet"] = _rounds(col, files, lines)
            col.stop()
        with CollectorProcess(base / "attacked", log=base / "attacked.log") as col:
            col.start()
            with Attack(col.ingest_port, col.http_port, Mix(), limit_s=600) as attack:
                out["attacked"] = _rounds(col, files, lines)
            out["attack"] = {"opened": attack.tally.opened, "answers": attack.tally.answers}
            col.stop()
        q, a = out["quiet"], out["attacked"]
        out["ratio"] = {
            "ship_time_attacked_vs_quiet": round(sum(a["ship_s"]) / sum(q["ship_s"]), 2),
            "grep_time_attacked_vs_quiet": round(a["grep_s_total"] / q["grep_s_total"], 2),
        }
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        print(json.dumps(run(args.lines, args.rounds), indent=2))
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"a command did not finish: {exc}") from None


if __name__ == "__main__":
    main()
