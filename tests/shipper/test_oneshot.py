"""``wharf ship`` drives the daemon's send path (``shipper.oneshot``): the batcher's spans, the
daemon's file ids, several batches in order. A real collector child, the real CLI."""

from __future__ import annotations

import os
import re
from pathlib import Path

from collector.storage import Store
from tests.harness import CollectorProcess
from tests.shipper.helpers import assert_exactly_once, line, numbers

LINES = 120_000  # 12 MB of 100-byte lines: three batches of 4 MiB of text


def test_ship_cuts_contiguous_spans_under_a_daemon_style_file_id(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("wb") as f:
        f.write(b"".join(line(i) for i in range(LINES - 2)))
        # The per-line path between runs (CRLF, invalid UTF-8), and a last line without its
        # newline: its bytes are in the last span too.
        f.write(line(LINES - 2)[:-1] + b"\r\n")
        f.write(b"n=%09d bad \xff byte, no newline" % (LINES - 1))
    size = path.stat().st_size
    st = os.stat(path)
    with CollectorProcess(tmp_path / "data").start() as col:
        col.ship("big", "raw", path)
        assert col.stop() == 0
        with Store(col.data) as store:
            batches = [b for part in store.partitions("big") for b in part.read(0, 1 << 40)]
    assert len(batches) >= 3
    spans = [s for b in batches for s in b.spans]
    # One file id, made as the daemon makes them (``shipper.identity``): device, inode, and
    # random bits; the spans follow each other from the first byte to the last.
    assert len({s.file_id for s in spans}) == 1
    assert re.fullmatch(rf"{st.st_dev:x}\.{st.st_ino:x}\.[0-9a-f]{{12}}", spans[0].file_id)
    assert [(s.start, s.end) for s in spans] == [
        (a, b)
        for a, b in zip([0] + [s.end for s in spans[:-1]], [s.end for s in spans], strict=True)
    ]
    assert spans[-1].end == size
    records = [r for b in batches for r in b.records()]
    assert_exactly_once(numbers(r.line for r in records), range(LINES))
    assert [r.offset for r in records[:3]] == [0, 100, 200]
    assert records[-1].line == f"n={LINES - 1:09d} bad \ufffd byte, no newline"
    assert records[-2].line == line(LINES - 2)[:-1].decode()
