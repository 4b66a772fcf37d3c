"""The zero-copy path end to end: a real shipper daemon and a real collector on loopback.

What the collector stores is what the per-line path makes of the same files (``Tail.feed``
and ``parser.parse`` line by line, computed here in the test): raw, clf and json inputs, files
with CRLF lines, invalid UTF-8, an over-long line and a last line without its newline, written
in pieces so reads end mid-line. And a collector that takes only batch version 1 (as every
collector from before version 2) gets version-1 batches, agreed in HELLO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parsers import Record, get_parser
from shipper.tail import Tail
from tests.harness import IngestUnderTest, ShipperProcess, wait_caught_up, write_shipper_config
from tests.parsers._vectors import LOGS_DIR
from tests.shipper.helpers import scene

_LIMIT = 4096  # max_line_bytes: the over-long line below is cut, on the per-line path


def _content(log: str, lines: int) -> bytes:
    data = b"\n".join((LOGS_DIR / log).read_bytes().split(b"\n")[:lines]) + b"\n"
    cut = len(data) // 3
    return (
        data[:cut]
        + b"a CRLF line\r\n"
        + b"invalid \xff\xfe bytes\n"
        + b"z" * (2 * _LIMIT)
        + b"\n"
        + data[cut:]
        + b"the last line, no newline"
    )


def _expected(content: bytes, parser_name: str, extra: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The per-line path: every event of the file and its parse, as the collector should hold
    them (ts only when the line has one: otherwise it is the read time)."""
    tail = Tail(0, max_line_bytes=_LIMIT)
    events = tail.feed(content, 0) + tail.flush(0)
    parser = get_parser(parser_name)
    out = []
    for e in events:
        p = parser.parse(e.text)
        out.append((e.offset, e.text, {**p.fields, **extra}, p.level, p.ts))
    return out


def _check(records: list[Record], source: str, want: list[tuple[Any, ...]]) -> None:
    """The stored records of ``source`` are ``want``, in file order, each once (a line
    without a timestamp of its own has the read time: not compared)."""
    mine = sorted((r for r in records if r.source == source), key=lambda r: r.offset)
    got = [
        (r.offset, r.line, r.fields, r.level, None if w[4] is None else r.ts)
        for r, w in zip(mine, want, strict=False)
    ]
    assert len(mine) == len(want)
    assert got == want


def _write_in_pieces(path: Path, content: bytes, pieces: int) -> None:
    step = len(content) // pieces + 1
    with path.open("ab") as f:
        for i in range(0, len(content), step):
            f.write(content[i : i + step])
            f.flush()


def test_raw_clf_and_json_inputs_store_what_the_per_line_path_makes(tmp_path: Path) -> None:
    inputs = [
        {"paths": ["raw/*.log"], "topic": "raw", "parser": "raw", "fields": {"env": "prod"}},
        {"paths": ["clf/*.log"], "topic": "clf", "parser": "clf", "fields": {"dc": "x1"}},
        {"paths": ["json/*.log"], "topic": "json", "parser": "json"},
    ]
    s = scene(tmp_path, inputs, max_line_bytes=_LIMIT, read_buffer_bytes=64 << 10)
    files = {
        "raw": (s.logs / "raw" / "a.log", _content("apache_combined.log", 3000), {"env": "prod"}),
        "clf": (s.logs / "clf" / "a.log", _content("apache_combined.log", 3000), {"dc": "x1"}),
        "json": (s.logs / "json" / "a.log", _content("nginxplus_status.jsonl", 300), {}),
    }
    for path, content, _ in files.values():
        path.parent.mkdir()
        _write_in_pieces(path, content[: len(content) // 2], 1)
    s.shipper.start()
    try:
        for path, content, _ in files.values():
            _write_in_pieces(path, content[len(content) // 2 :], 7)
        wait_caught_up(s.state, timeout=90, min_files=3)
        assert s.shipper.term() == 0
    finally:
        s.shipper.close()
        s.col.stop()
    for topic, (path, content, extra) in files.items():
        _check(s.col.records(topic), str(path), _expected(content, topic, extra))


def test_a_collector_that_takes_only_version_1_gets_version_1(tmp_path: Path) -> None:
    """The collector announces (1,) in WELCOME, as one from before version 2 does (it sends
    no list at all, which decodes the same): the shipper builds version 1, and every record
    arrives as the per-line path makes it."""
    srv = IngestUnderTest(tmp_path / "data")
    srv.server.batch_versions = (1,)
    logs = tmp_path / "logs"
    logs.mkdir()
    content = _content("apache_combined.log", 2000)
    (logs / "a.log").write_bytes(content)
    config = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=tmp_path / "state",
        collectors=[srv.address],
        inputs=[
            {"paths": [str(logs / "*.log")], "topic": "v1", "parser": "clf", "fields": {"k": 1}}
        ],
        max_line_bytes=_LIMIT,
    )
    sh = ShipperProcess(config, tmp_path / "shipper.log")
    try:
        sh.start()
        wait_caught_up(tmp_path / "state", timeout=90)
        assert sh.term() == 0
    finally:
        sh.close()
    try:
        batches = [b for part in srv.store.partitions("v1") for b in part.read(0, 1 << 40)]
    finally:
        srv.close()
    assert batches and {b.version for b in batches} == {1}
    records = [r for b in batches for r in b.records()]
    _check(records, str(logs / "a.log"), _expected(content, "clf", {"k": 1}))
