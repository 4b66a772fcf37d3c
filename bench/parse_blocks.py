"""Block parsing (``parsers.columnar``) against the per-line parser on the same lines.

Prints one JSON object: for each input, microseconds per line of

- ``per_line``: the anchor, ``parsers.columnar.per_line`` (``parser.parse`` on every line,
  then the dicts into columns: what the shipper does for a parser without a block form);
- ``block``: the parser's block form (``columnar_for(parser).parse_block``);
- ``block_encode``: the block, then its fields encoded as a batch's columnar fields section
  (``wharf._fields.FieldsWriter``), the part of building a batch that depends on the parser;

and ``ratio`` = per_line / block. Lines are cut into blocks of about 256 KiB, as the
shipper reads them (``read_buffer_bytes``). Each figure is the median of ``--rounds``
rounds; each round runs the input at least ``--seconds``. The machine's noise moves both
sides alike, so the ratio is the figure to compare between runs.

Inputs: ``apache_combined.log`` (10,000 real lines, ``../shared/data/logs``), the same lines
cut to common format, and with nginx's ``main`` field ``"$http_x_forwarded_for"`` added;
generated busy-server lines (many lines per second, as ``bench/shipper.py``'s repeated log
is not); generated JSON lines shaped like structlog/zap output. Before timing, every block's
result is checked against ``parser.parse`` line by line.

    .venv/bin/python bench/parse_blocks.py [--rounds 5] [--seconds 0.5] [--only clf_combined]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parsers import Parser, get_parser  # noqa: E402
from parsers.columnar import Block, columnar_for, per_line  # noqa: E402
from wharf._fields import FieldsWriter  # noqa: E402

LOGS = ROOT.parent / "shared" / "data" / "logs"
BLOCK_BYTES = 256 << 10


def _apache() -> list[str]:
    text = (LOGS / "apache_combined.log").read_bytes().decode("utf-8", "replace")
    return [line.removesuffix("\r") for line in text.split("\n") if line]


def _common(lines: list[str]) -> list[str]:
    """Each combined line up to its size (a common-format line)."""
    out = []
    for line in lines:
        head, _, rest = line.partition('"')
        request, _, tail = rest.partition('"')
        out.append(f'{head}"{request}"' + " ".join(tail.split(" ")[:3]))
    return out


def _nginx(lines: list[str]) -> list[str]:
    """The combined lines as nginx writes them: a body size of ``0``, never ``-``."""
    out = []
    for line in lines:
        parts = line.split('"')
        if len(parts) > 2 and parts[2].endswith(" - "):
            parts[2] = parts[2][:-2] + "0 "
        out.append('"'.join(parts))
    return out


def _busy(n: int = 20_000) -> list[str]:
    """Combined lines of a busy server: ~50 lines a second, a few clients and paths."""
    rng = random.Random(16)
    base = 1_700_000_000
    paths = [f"/api/v1/items/{i}" for i in range(200)] + ["/", "/health", "/static/app.js"]
    agents = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0", "-"]
    out = []
    for i in range(n):
        t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(base + i // 50))
        size = rng.choice(["-", str(rng.randrange(100, 90_000))])
        out.append(
            f"10.0.{rng.randrange(4)}.{rng.randrange(256)} - - [{t}] "
            f'"{rng.choice(["GET", "GET", "POST"])} {rng.choice(paths)} HTTP/1.1" '
            f"{rng.choice([200, 200, 200, 304, 404, 500])} {size} "
            f'"{rng.choice(["-", "https://example.com/"])}" "{rng.choice(agents)}"'
        )
    return out


def _json_lines(n: int = 10_000) -> list[str]:
    """~200-byte JSON objects shaped like structlog/zap output (as bench/parsers.py)."""
    rng = random.Random(42)
    base = 1_700_000_000
    out = []
    for i in range(n):
        t = base + i * 0.0137
        sec = int(t)
        obj = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            + f".{int((t - sec) * 1e6):06d}Z",
            "level": rng.choice(["info", "info", "info", "debug", "warn", "error"]),
            "logger": rng.choice(["api.http", "db.pool", "worker.queue"]),
            "msg": rng.choice(["request done", "query slow", "job finished", "cache miss"]),
            "method": rng.choice(["GET", "POST"]),
            "path": f"/api/v1/items/{rng.randrange(100000)}",
            "status": rng.choice([200, 200, 201, 404, 500]),
            "latency_ms": round(rng.uniform(0.1, 900), 3),
            "request_id": f"{rng.getrandbits(64):016x}",
        }
        out.append(json.dumps(obj, separators=(",", ":")))
    return out


def _cases() -> dict[str, tuple[Parser, list[str]]]:
    apache = _apache()
    nginx = _nginx(apache)
    return {
        "clf_combined": (get_parser("clf"), apache),
        "clf_combined_busy": (get_parser("clf"), _busy()),
        "clf_common": (get_parser("clf", format="common"), _common(apache)),
        "nginx_main": (get_parser("nginx"), [line + ' "-"' for line in nginx]),
        "nginx_combined": (get_parser("nginx", format="combined"), nginx),
        "json": (get_parser("json"), _json_lines()),
    }


def _blocks(lines: list[str]) -> list[tuple[bytes, list[str]]]:
    out: list[tuple[bytes, list[str]]] = []
    start, size = 0, 0
    for i, line in enumerate(lines):
        size += len(line) + 1
        if size >= BLOCK_BYTES or i == len(lines) - 1:
            chunk = lines[start : i + 1]
            out.append(("\n".join(chunk).encode("utf-8"), chunk))
            start, size = i + 1, 0
    return out


def _same(a: Block, b: Block) -> bool:
    return (a.ts, a.levels, a.fields.dicts(), a.errors) == (
        b.ts,
        b.levels,
        b.fields.dicts(),
        b.errors,
    )


def _time(run: Callable[[], None], lines: int, seconds: float) -> float:
    """Microseconds per line, running ``run`` (all lines once) for at least ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        run()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / (n * lines) * 1e6


def _encode(block: Block) -> None:
    writer = FieldsWriter()
    writer.add_columns(block.fields)
    writer.encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--only", default="", help="comma-separated input names")
    args = ap.parse_args()
    wanted = {n for n in args.only.split(",") if n}
    results: dict[str, Any] = {}
    for name, (parser, lines) in _cases().items():
        if wanted and name not in wanted:
            continue
        columnar = columnar_for(parser)
        blocks = _blocks(lines)
        count = len(lines)
        if columnar is None:
            results[name] = {"lines": count, "block": None, "note": "no block form"}
            continue
        for blob, chunk in blocks:  # the block form must give the per-line results
            if not _same(columnar.parse_block(blob, len(chunk), 0), per_line(parser, chunk, 0)):
                raise SystemExit(f"{name}: the block result differs from the per-line result")

        def anchor(p: Parser = parser, bs: list[tuple[bytes, list[str]]] = blocks) -> None:
            for _, chunk in bs:
                per_line(p, chunk, 0)

        def block(c: Any = columnar, bs: list[tuple[bytes, list[str]]] = blocks) -> None:
            for blob, chunk in bs:
                c.parse_block(blob, len(chunk), 0)

        def block_encode(c: Any = columnar, bs: list[tuple[bytes, list[str]]] = blocks) -> None:
            for blob, chunk in bs:
                _encode(c.parse_block(blob, len(chunk), 0))

        rounds: dict[str, list[float]] = {"per_line": [], "block": [], "block_encode": []}
        for _ in range(args.rounds):
            for label, fn in (
                ("per_line", anchor),
                ("block", block),
                ("block_encode", block_encode),
            ):
                rounds[label].append(_time(fn, count, args.seconds))
        med = {k: round(statistics.median(v), 3) for k, v in rounds.items()}
        results[name] = {
            "lines": count,
            "blocks": len(blocks),
            "us_per_line": med,
            "ratio_per_line_over_block": round(med["per_line"] / med["block"], 2),
            "rounds": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
        }
        print(f"[parse_blocks] {name}: {med}", file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "block_bytes": BLOCK_BYTES,
                "rounds": args.rounds,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
