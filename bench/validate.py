"""Collector CPU per line for checking incoming batches (``Batch.validate``), before and after
batch version 2 and the fast validate.

Run: ``.venv/bin/python bench/validate.py [--lines 200000] [--repeat 3] [--before a2f2936]``.
Prints one JSON object on stdout.

What the collector does with every PRODUCE (``collector.ingest._validate``): ``Batch(data)``
(header, checksum, meta) then ``validate()`` (decompress and check everything a reader later
trusts). Measured on batches of about 4 MiB of text each, as the shipper cuts them, from
``apache_combined.log`` (``../shared/data/logs``) repeated:

- *before*: ``wharf/batch.py`` as it was at ``--before`` (read from git, loaded on its own),
  its batches (version 1) built from records the way the shipper built them then (``raw``: one
  ts per chunk; ``clf``: ``ClfParser.parse`` per line), checked by its ``validate``;
- *after*: the batches today's shipper builds (version 2: runs of whole lines, columnar clf
  fields, ``parsers.columnar``) checked by today's ``validate``; and version-1 batches (from a
  shipper of before) checked by today's ``validate``.

CPU is ``time.process_time`` of this process around the checks alone (building is not
counted), the median of ``--repeat`` passes, divided by the lines checked.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SOURCE = ROOT.parent / "shared" / "data" / "logs" / "apache_combined.log"
BATCH_TEXT = 4 << 20  # the shipper's batch_bytes default

from parsers import Record, get_parser  # noqa: E402
from parsers.columnar import columnar_for  # noqa: E402
from wharf import batch as wb  # noqa: E402


def _before_module(rev: str) -> types.ModuleType:
    """``wharf/batch.py`` at git revision ``rev``, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:wharf/batch.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("wharf_batch_before")
    module.__file__ = f"{rev}:wharf/batch.py"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _lines(count: int) -> list[bytes]:
    src = SOURCE.read_bytes().split(b"\n")
    src = [ln for ln in src if ln]
    return [src[i % len(src)] for i in range(count)]


def _groups(lines: list[bytes]) -> list[list[bytes]]:
    """Lines cut into batches of about ``BATCH_TEXT`` bytes."""
    out: list[list[bytes]] = []
    cur: list[bytes] = []
    size = 0
    for ln in lines:
        cur.append(ln)
        size += len(ln) + 1
        if size >= BATCH_TEXT:
            out.append(cur)
            cur, size = [], 0
    if cur:
        out.append(cur)
    return out


def _records(group: list[bytes], parser_name: str, offset: int) -> list[Record]:
    parser = get_parser(parser_name)
    now = time.time_ns()
    out = []
    for ln in group:
        text = ln.decode()
        p = parser.parse(text)
        out.append(
            Record(
                ts=p.ts if p.ts is not None else now,
                line=text,
                host="web-1",
                source="/var/log/access.log",
                fields=p.fields,
                level=p.level,
                file_id="1:2:abc",
                offset=offset,
            )
        )
        offset += len(ln) + 1
    return out


def _runs(group: list[bytes], parser_name: str, offset: int) -> bytes:
    """A batch as today's shipper builds it: runs of whole lines, a chunk (256 KiB) each."""
    columnar = columnar_for(get_parser(parser_name))
    parts: list[wb.Part] = []
    now = time.time_ns()
    chunk: list[bytes] = []
    size = 0
    for ln in [*group, None]:
        if ln is not None:
            chunk.append(ln)
            size += len(ln) + 1
        if chunk and (ln is None or size >= 256 << 10):
            blob = b"\n".join(chunk)
            kw: dict[str, Any] = {"host": "web-1", "source": "/var/log/access.log"}
            if columnar is None:
                run = wb.Run(blob, len(chunk), offset, ts=now, file_id="1:2:abc", **kw)
            else:
                b = columnar.parse_block(blob, len(chunk), now)
                run = wb.Run(blob, len(chunk), offset, ts=b.ts, file_id="1:2:abc",
                             levels=b.levels, fields=b.fields, **kw)  # fmt: skip
            parts.append(run)
            offset += len(blob) + 1
            chunk, size = [], 0
    return wb.build_parts(parts, spans=[wb.Span("1:2:abc", 0, offset)])


def _cpu_per_line(
    check: Callable[[bytes], None], batches: list[bytes], lines: int, repeat: int
) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        for data in batches:
            check(data)
        samples.append(time.process_time() - t0)
    return round(statistics.median(samples) / lines * 1e6, 3)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", default="a2f2936", help="git revision of the old batch format")
    ap.add_argument("--json", action="store_true", help="JSON output (the default)")
    args = ap.parse_args()
    old = _before_module(args.before)
    groups = _groups(_lines(args.lines))
    out: dict[str, Any] = {
        "bench": "validate",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "input": {"lines": args.lines, "batches": len(groups), "source": SOURCE.name},
        "us_per_line": {},
    }

    def old_check(data: bytes) -> None:
        old.Batch(data).validate()

    def new_check(data: bytes) -> None:
        wb.Batch(data).validate()

    for parser in ("raw", "clf"):
        v1_old, v1_new, v2 = [], [], []
        offset = 0
        for g in groups:
            recs = _records(g, parser, offset)
            v1_old.append(old.build(recs, spans=[wb.Span("1:2:abc", offset, offset + 1)]))
            v1_new.append(wb.build(recs, spans=[wb.Span("1:2:abc", offset, offset + 1)], version=1))
            v2.append(_runs(g, parser, offset))
            offset += sum(len(ln) + 1 for ln in g)
        for data in v2:
            wb.Batch(data).validate()
        out["us_per_line"][parser] = {
            "before: v1 batch, old validate": _cpu_per_line(
                old_check, v1_old, args.lines, args.repeat
            ),
            "after: v1 batch, new validate": _cpu_per_line(
                new_check, v1_new, args.lines, args.repeat
            ),
            "after: v2 batch, new validate": _cpu_per_line(new_check, v2, args.lines, args.repeat),
            "stored bytes per line v1 / v2": [
                round(sum(map(len, v1_new)) / args.lines, 1),
                round(sum(map(len, v2)) / args.lines, 1),
            ],
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
