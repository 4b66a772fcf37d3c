"""File identity: inode reuse, files with equal first bytes, truncate-and-rewrite while
stopped, odd bytes (invalid UTF-8, NUL, CRLF, UTF-16 with a BOM) with byte-exact offsets."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.harness import CollectorProcess, ShipperProcess, status_of, wait_caught_up, wait_for
from tests.shipper.helpers import assert_exactly_once, line, numbers, scene

HEADER = b"".join(f"# build header {i:04d} {'h' * 80}\n".encode() for i in range(22))  # ~2 KiB


def _setup(tmp_path: Path, **knobs: object) -> tuple[CollectorProcess, Path, ShipperProcess]:
    s = scene(tmp_path, [{"paths": ["*.log"], "topic": "id"}], **knobs)
    return s.col, s.logs, s.shipper


def _on_inode(directory: Path, ino: int, dest: Path, content: bytes) -> bool:
    """Create a file that the filesystem puts on inode ``ino`` (freed just before), with
    ``content``, and move it to ``dest``. False if the filesystem would not reuse it. (The
    shipper may see the probe on the old inode under another name first: it must not take it
    for the deleted file renamed.)"""
    made: list[Path] = []
    try:
        for k in range(64):
            p = directory / f"probe{k}.tmp"
            p.write_bytes(b"")
            if p.stat().st_ino == ino:
                p.write_bytes(content)
                os.rename(p, dest)
                return True
            made.append(p)
        return False
    finally:
        for p in made:
            p.unlink(missing_ok=True)


def _store_numbers(col: CollectorProcess) -> list[int]:
    return numbers(col.lines("id"))


def test_inode_reuse_live(tmp_path: Path) -> None:
    """A fully read file (descriptor closed as idle) is deleted and a new file with the same
    2 KiB header lands on the same inode at the same path: it is a new file (the CRC of the
    bytes before the saved offset differs), read from 0 under a new id."""
    col, logs, sh = _setup(tmp_path, close_inactive_s=0.3)
    a = logs / "a.log"
    a.write_bytes(HEADER + b"".join(line(i) for i in range(300)))
    try:
        sh.start()
        wait_caught_up(tmp_path / "state")
        wait_for(
            lambda: status_of(tmp_path / "state")["files"][0]["state"] == "closed",
            10,
            "the idle descriptor to close",
        )
        ino = a.stat().st_ino
        a.unlink()
        if not _on_inode(logs, ino, a, HEADER + b"".join(line(i) for i in range(300, 1000))):
            pytest.skip("this filesystem did not reuse the freed inode")
        wait_caught_up(tmp_path / "state")
        # Depending on timing the shipper sees "same inode, other bytes" (a replaced file) or
        # "deleted, then a new file": both read the new file from 0 under a new id. What it
        # must never do is take the probe on the freed inode for the old file renamed.
        assert "renamed to" not in sh.output()
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    lines = col.lines("id")
    assert lines.count(HEADER.decode().splitlines()[0]) == 2  # each file's header once
    assert_exactly_once(numbers(lines), range(1000))


def test_inode_reuse_while_stopped(tmp_path: Path) -> None:
    """The same while the shipper is stopped: its checkpoint names the inode, the file on it
    is another one, so it is read from 0."""
    col, logs, sh = _setup(tmp_path)
    a = logs / "a.log"
    a.write_bytes(HEADER + b"".join(line(i) for i in range(300)))
    try:
        sh.start()
        wait_caught_up(tmp_path / "state")
        assert sh.term() == 0
        ino = a.stat().st_ino
        a.unlink()
        if not _on_inode(logs, ino, a, HEADER + b"".join(line(i) for i in range(300, 1000))):
            pytest.skip("this filesystem did not reuse the freed inode")
        sh.start()
        assert "was replaced since its checkpoint" in sh.output()
        wait_caught_up(tmp_path / "state")
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(_store_numbers(col), range(1000))


@pytest.mark.parametrize("how", ["larger", "smaller"])
def test_truncate_and_rewrite_while_stopped(tmp_path: Path, how: str) -> None:
    """Truncated and rewritten (larger, or smaller, than the saved offset) while the shipper
    was stopped: the new content is read from 0 under a new file id, nothing lost or doubled."""
    col, logs, sh = _setup(tmp_path)
    a = logs / "a.log"
    a.write_bytes(b"".join(line(i) for i in range(1000)))
    new = range(1000, 3000) if how == "larger" else range(1000, 1100)
    try:
        sh.start()
        wait_caught_up(tmp_path / "state")
        assert sh.term() == 0
        with a.open("r+b") as f:
            f.truncate(0)
            f.write(b"".join(line(i) for i in new))
        sh.start()
        assert "since its checkpoint" in sh.output()
        wait_caught_up(tmp_path / "state")
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(_store_numbers(col), [*range(1000), *new])


def test_same_first_bytes_and_tiny_files_without_newline(tmp_path: Path) -> None:
    """60 files that share their first 2 KiB never collide (identity is device + inode), and
    20 tiny files without a newline are shipped once the partial-line timeout passes."""
    col, logs, sh = _setup(tmp_path, partial_line_timeout_s=1.0, linger_s=0.2)
    try:
        sh.start()
        for k in range(60):
            (logs / f"same{k:02d}.log").write_bytes(
                HEADER + b"".join(line(i) for i in range(k * 50, k * 50 + 50))
            )
        t0 = time.monotonic()
        for k in range(20):
            (logs / f"tiny{k:02d}.log").write_bytes(f"n={10_000 + k:09d}".encode())
        wait_caught_up(tmp_path / "state", min_files=80)
        took = time.monotonic() - t0
        assert took < 1.0 + 0.2 + 4.0, f"tiny files took {took:.1f} s"
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    lines = col.lines("id")
    assert lines.count(HEADER.decode().splitlines()[0]) == 60
    assert_exactly_once(numbers(lines), [*range(3000), *range(10_000, 10_020)])


def test_invalid_utf8_nul_crlf_utf16_offsets_are_byte_exact(tmp_path: Path) -> None:
    """No crash on odd bytes; every record's offset is the file offset of its line's first
    byte; invalid UTF-8 is replaced and counted; CRLF loses its CR; a UTF-16 file (its byte
    order mark says so) becomes UTF-8 text with the offsets of its own bytes."""
    col, logs, sh = _setup(tmp_path)
    mixed = b"plain\r\nbad \xff\xfe\xc3 utf8\nnul \x00\x00 bytes\n\r\ncut \xe2\x82\nlast crlf\r\n"
    utf16 = "first line\r\nsecond ☃ line\nlast".encode("utf-16")  # BOM + UTF-16-LE
    (logs / "mixed.log").write_bytes(mixed)
    (logs / "utf16.log").write_bytes(utf16)
    try:
        sh.start()
        wait_caught_up(tmp_path / "state", min_files=2)
        st = status_of(tmp_path / "state")
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    records = col.records("id")
    utf16_records = sorted(
        (r for r in records if r.source.endswith("utf16.log")), key=lambda r: r.offset
    )
    assert [(r.offset, r.line) for r in utf16_records] == [
        (0, "first line"),  # the byte order mark and CR LF are not text
        (2 + 24, "second ☃ line"),
        (2 + 24 + 28, "last"),  # no newline: shipped after the partial-line timeout
    ]
    for name, raw in (("mixed.log", mixed),):
        mine = sorted((r for r in records if r.source.endswith(name)), key=lambda r: r.offset)
        chunks = raw.split(b"\n")
        if not chunks[-1]:
            chunks.pop()
        starts, pos = [], 0
        for chunk in chunks:
            starts.append(pos)
            pos += len(chunk) + 1
        assert [r.offset for r in mine] == starts, name
        for r, chunk in zip(mine, chunks, strict=True):
            body = chunk[:-1] if chunk.endswith(b"\r") else chunk
            assert r.line == body.decode("utf-8", "replace"), name
    # Two in mixed.log (NUL bytes are valid UTF-8); none in the UTF-16 file.
    assert st["counters"]["invalid_utf8_lines"] == 2
