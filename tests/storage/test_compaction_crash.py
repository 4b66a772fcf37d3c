"""Compaction is crash-safe (issue 17): SIGKILL a real process while it compacts, at seeded
random moments and at each step of the swap, then open the store: every record is there once
at its offset, nothing is left behind, every filter describes its segment, greps count right,
and resends are still duplicates. Compaction then goes on from where it was cut and finishes.

One template data directory is built per module (a topic of two partitions of 64 KiB
segments, batches written at zstd 1 so that compaction at ``LEVEL`` rewrites every segment);
each run works on a copy of it.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from collector.filters.query import Query
from collector.storage import Store, TopicConfig
from collector.storage.compaction import SUFFIX, CompactionSettings
from collector.storage.index import SegmentIndex
from collector.storage.partition import Partition
from collector.storage.scan import ScanStats
from tests.harness import CollectorProcess
from wharf import batch as wb
from wharf.record import Record

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "t"
PARTITIONS = 2
LEVEL = 6  # batches arrive at zstd 1: at 6 every segment shrinks, and a run takes ~0.5 s
BATCHES = 400
PER_BATCH = 100
WIDTH = 120  # bytes per line in the pretend source files
NEEDLE_EVERY = 97
PRODUCERS = (uuid.UUID(int=17).bytes, uuid.UUID(int=18).bytes)
# (producer, file) streams: the same file id under two producers is two streams.
STREAMS = ((PRODUCERS[0], "a.log"), (PRODUCERS[1], "a.log"), (PRODUCERS[0], "b.log"))
KILLS = 24  # SIGKILLs that land while the child runs, at seeded random moments
CHAIN = 5  # kills on one directory before it is compacted to the end and checked again
SETTINGS = CompactionSettings(enabled=False, level=LEVEL)  # for compactions in this process
CHILD_TIMEOUT_S = 60.0  # a broken run fails instead of hanging; never a speed check

Stream = tuple[bytes, str]  # (producer id, file id)
Contents = tuple[list[tuple[int, Record]], dict[Stream, list[tuple[int, int]]]]


def _line(n: int, rng: random.Random) -> str:
    words = " ".join(f"w{rng.randrange(400)}" for _ in range(10))
    needle = "needle " if n % NEEDLE_EVERY == 0 else ""
    return f"seq={n:08d} u{n:08d} {needle}{words} end"


@dataclass
class Template:
    """The uncompacted data directory and what it holds."""

    dir: Path
    contents: dict[int, Contents]  # per partition: what ``_contents`` reads
    sent: dict[int, list[bytes]]  # per partition, the batches as the producers sent them
    ends: dict[int, int]
    segments: dict[int, list[int]]  # base offsets of each partition's segments
    needles: int
    probes: list[int]  # sequence numbers each counted once by a grep for ` u<n> `
    full_run_s: float = 0.0  # one child compacting all of a copy, ready to done


def _contents(batches: list[wb.Batch], why: str) -> Contents:
    """Every record with its offset, and the bytes of each (producer, file) the batches say
    they hold (adjacent spans joined): what readers and the dedupe marks see, whether or not
    compaction kept the batch boundaries."""
    records: list[tuple[int, Record]] = []
    spans: dict[Stream, list[tuple[int, int]]] = {}
    for b in batches:
        h = b.header
        rs = b.records()
        assert h.record_count == len(rs), f"{why}: batch at {h.base_offset}: record count"
        ts = [r.ts for r in rs]
        assert (h.min_ts, h.max_ts) == (min(ts), max(ts)), f"{why}: batch at {h.base_offset}"
        records += [(h.base_offset + i, r) for i, r in enumerate(rs)]
        for s in b.spans:
            spans.setdefault((h.producer_id, s.file_id), []).append((s.start, s.end))
    joined: dict[Stream, list[tuple[int, int]]] = {}
    for key, found in spans.items():
        out: list[tuple[int, int]] = []
        for start, end in sorted(found):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(end, out[-1][1]))
            else:
                out.append((start, end))
        joined[key] = out
    return records, joined


def _read_all(store: Store, partition: int) -> list[wb.Batch]:
    return store.partition(TOPIC, partition).read(0, max_bytes=1 << 40)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("compaction-template")
    data = base / "data"
    rng = random.Random(1717)
    pos = [0] * len(STREAMS)
    sent: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    n = 0
    with Store(data) as store:
        store.create_topic(TOPIC, TopicConfig(partitions=PARTITIONS, segment_bytes=64 * 1024))
        for k in range(BATCHES):
            producer, file_id = STREAMS[k % len(STREAMS)]
            s = k % len(STREAMS)
            records = [
                Record(
                    ts=1_700_000_000_000_000_000 + (n + i) * 1_000_000,
                    line=_line(n + i, rng),
                    host=f"h{k % 3}",
                    source=f"/var/log/{file_id}",
                    file_id=file_id,
                    offset=(pos[s] + i) * WIDTH,
                )
                for i in range(PER_BATCH)
            ]
            span = wb.Span(file_id, pos[s] * WIDTH, (pos[s] + PER_BATCH) * WIDTH)
            data_ = wb.build(records, producer_id=producer, producer_seq=k, spans=[span], level=1)
            partition = k % PARTITIONS
            assert not store.append(TOPIC, partition, data_).duplicate
            sent[partition].append(data_)
            pos[s] += PER_BATCH
            n += PER_BATCH
        contents = {p: _contents(_read_all(store, p), "template") for p in range(PARTITIONS)}
        ends = {p: store.partition(TOPIC, p).end_offset for p in range(PARTITIONS)}
        segments = {p: [s.base for s in store.partition(TOPIC, p).segments] for p in ends}
    assert all(len(bases) >= 8 for bases in segments.values()), segments
    probes = random.Random(99).sample(range(n), 3)
    t = Template(data, contents, sent, ends, segments, len(range(0, n, NEEDLE_EVERY)), probes)
    # How long one child takes to compact a whole copy, ready to done: the random kills spread
    # over that. The faster of two runs (the first pays for cold caches).
    for run in range(2):
        copy = base / f"calibrate{run}"
        shutil.copytree(data, copy)
        proc, done = _run_child(copy)
        assert proc.returncode == 0 and done is not None, _child_log(copy)
        assert done["segments"] == sum(len(b) for b in segments.values()), done
        assert done["bytes_after"] < done["bytes_before"] and not done["errors"], done
        t.full_run_s = min(t.full_run_s or done["elapsed"], done["elapsed"])
    _check(copy, t, "calibration run")
    return t


# -- the child -------------------------------------------------------------------------------


def _log_of(data: Path) -> Path:
    return data.with_name(f"{data.name}-child.log")


def _child_log(data: Path) -> str:
    """The end of the children's stderr, for failure messages."""
    log = _log_of(data)
    text = log.read_bytes()[-3000:].decode(errors="replace") if log.exists() else ""
    return f"\n--- child stderr ---\n{text}"


def _start_child(data: Path, kill_at: str | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.storage.compaction_child", str(data), TOPIC, str(LEVEL)]
    with _log_of(data).open("ab") as err:
        # Unbuffered: each read takes only what the child wrote, so select() never waits on
        # bytes that sit in a buffer already.
        return subprocess.Popen(
            [*args, *([kill_at] if kill_at else [])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            bufsize=0,
        )


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The child's next line (b"" once it exited without one)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, f"the child said nothing for {timeout:g} s"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            byte = proc.stdout.read(1)
            if not byte:
                return line
            line += byte
    return line


def _run_child(data: Path, kill_at: str | None = None) -> tuple[subprocess.Popen[bytes], Any]:
    """Run the child to its end (or its own kill): the process and its ``done`` result, with
    the seconds from ``ready`` to ``done`` added as ``elapsed``."""
    proc = _start_child(data, kill_at)
    try:
        assert _read_line(proc, CHILD_TIMEOUT_S) == b"ready\n"
        started = time.monotonic()
        done = _read_line(proc, CHILD_TIMEOUT_S)
        elapsed = time.monotonic() - started
        proc.wait(CHILD_TIMEOUT_S)
    finally:
        _reap(proc)
    if not done.startswith(b"done "):
        return proc, None
    return proc, {**json.loads(done[5:]), "elapsed": elapsed}


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child if it still runs, wait for it, close its stdout."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _kill_after(data: Path, delay: float) -> bool:
    """Start the child, SIGKILL it ``delay`` s after it said ``ready``; whether it was still
    running then (else it had finished: a complete run)."""
    proc = _start_child(data)
    try:
        assert _read_line(proc, CHILD_TIMEOUT_S) == b"ready\n"
        time.sleep(delay)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(CHILD_TIMEOUT_S)
    finally:
        _reap(proc)
    assert alive or proc.returncode == 0, f"child status {proc.returncode}{_child_log(data)}"
    return alive


# -- what a crash left, and what the store makes of it ---------------------------------------


def _partition_dirs(data: Path, topic: str = TOPIC, partitions: int = PARTITIONS) -> list[Path]:
    return [data / "topics" / topic / str(p) for p in range(partitions)]


def _tok_covered(path: Path) -> int:
    """``covered`` of a ``.tok`` file's header (read raw: opening it through the store would
    remove a stale one)."""
    return int(struct.unpack_from(">Q", path.read_bytes(), 12)[0])


def _crash_state(dirs: list[Path]) -> Counter[str]:
    """Where the kill landed, read from the files before anything opens them: per segment,
    ``rewriting`` (its ``*.compacting`` files being written, or waiting for the swap),
    ``mid-swap`` (its ``.tok`` renamed into place, its ``.seg`` not yet: the filters describe
    other bytes than the segment's) and ``compacted``."""
    found: Counter[str] = Counter()
    for d in dirs:
        for seg in sorted(d.glob("*.seg")):
            tok = seg.with_suffix(".tok")
            if tok.exists() and _tok_covered(tok) != seg.stat().st_size:
                found["mid-swap"] += 1
            elif any(d.glob(f"{seg.stem}.*{SUFFIX}*")):
                found["rewriting"] += 1
            elif tok.exists():
                found["compacted"] += 1
    return found


def _check_files(part: Partition, why: str) -> set[int]:
    """The files of an opened partition: nothing but its segments' own, every sealed segment's
    index and filters (if any) describing that very segment, none for the active one; the
    base offsets of the compacted segments."""
    files = {f.name for f in part.dir.iterdir()}
    bases = [s.base for s in part.segments]
    allowed = {f"{b:020d}.{ext}" for b in bases for ext in ("seg", "idx", "hwm", "tok")}
    assert files <= allowed, f"{why}: left behind in {part.dir}: {files - allowed}"
    compacted = set()
    for seg in part.segments[:-1]:
        idx = SegmentIndex.decode(seg.base, seg.index_path.read_bytes(), seg.size)
        assert idx is not None, f"{why}: {seg.index_path} does not describe its segment"
        assert seg.filters_path.exists() == (seg.filters is not None), f"{why}: {seg}"
        if seg.filters is not None:
            assert (seg.filters.covered, len(seg.filters)) == (seg.size, len(seg.index)), why
            assert _tok_covered(seg.filters_path) == seg.size, f"{why}: {seg}"
            compacted.add(seg.base)
    active = part.segments[-1]
    assert active.filters is None and not active.filters_path.exists(), f"{why}: {active}"
    return compacted


@dataclass
class Checked:
    compacted: set[tuple[int, int]] = field(default_factory=set)  # (partition, base)
    sealed: int = 0


def _check(data: Path, t: Template, why: str) -> Checked:
    """Open the store as a restart would and check everything; ``why`` says which run (seed,
    delay) in every failure message."""
    out = Checked()
    with Store(data) as store:
        for p in range(PARTITIONS):
            part = store.partition(TOPIC, p)
            assert part.end_offset == t.ends[p], f"{why}: end offset of partition {p}"
            records, spans = _contents(_read_all(store, p), why)
            want, want_spans = t.contents[p]
            assert len(records) == len(want), f"{why}: records of partition {p}"
            for old, new in zip(want, records, strict=True):
                assert new == old, f"{why}: partition {p}: record at offset {old[0]} changed"
            assert spans == want_spans, f"{why}: partition {p}: the batches' spans changed"
            bases = [s.base for s in part.segments]
            assert bases[: len(t.segments[p])] == t.segments[p], f"{why}: segments {bases}"
            out.sealed += len(part.segments) - 1
            out.compacted |= {(p, base) for base in _check_files(part, why)}
        parts = [(TOPIC, p) for p in range(PARTITIONS)]
        stats = ScanStats()
        needles = sum(store.count(parts, Query(pattern=" needle ", fixed=True), stats=stats))
        assert needles == t.needles, f"{why}: grep -F ' needle ' counted {needles}"
        for n in t.probes:
            probe = Query(pattern=f" u{n:08d} ", fixed=True)
            assert sum(store.count(parts, probe, stats=stats)) == 1, f"{why}: grep u{n:08d}"
        assert sum(store.count(parts, Query(pattern=" nowhere ", fixed=True))) == 0, why
        assert not stats.errors, f"{why}: {stats.errors}"
        if out.compacted:
            assert stats.batches_filtered > 0, f"{why}: filters of compacted segments unused"
        # Every tenth batch sent again: a duplicate, stored nowhere.
        for p in range(PARTITIONS):
            for data_ in t.sent[p][::10]:
                res = store.append(TOPIC, p, data_)
                assert res.duplicate and res.record_count == 0, f"{why}: resend stored: {res}"
            assert store.partition(TOPIC, p).end_offset == t.ends[p], f"{why}: resends stored"
    return out


def _all_compacted(c: Checked, t: Template, why: str) -> None:
    every = {(p, b) for p, bases in t.segments.items() for b in bases}
    assert c.compacted == every, f"{why}: not compacted: {sorted(every - c.compacted)}"


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_moments_of_compaction(template: Template, tmp_path: Path) -> None:
    """>= KILLS SIGKILLs at seeded random moments of a compaction child, in chains on one
    directory (each run goes on where the last was cut), each chain then compacted to its end.
    After every kill the store holds every record once, at its offset, and nothing else."""
    seed = 20260517
    rng = random.Random(seed)
    total = sum(len(b) for b in template.segments.values())
    kills = 0
    landed: Counter[str] = Counter()
    runs: list[str] = []
    chain = 0
    started = time.monotonic()
    while kills < KILLS:
        assert chain < 2 * KILLS, f"only {kills} kills landed while the child ran: {runs}"
        data = tmp_path / f"chain{chain}"
        shutil.copytree(template.dir, data)
        before: set[tuple[int, int]] = set()
        for k in range(CHAIN):
            if len(before) == total:
                break
            # Spread over what is left to do: a kill after the child finished kills nothing.
            left = template.full_run_s * (total - len(before)) / total
            delay = round(rng.uniform(0.0, left), 4)
            why = f"seed {seed}, chain {chain}, kill {k}, {delay} s after ready"
            alive = _kill_after(data, delay)
            state = _crash_state(_partition_dirs(data))
            landed.update(state.keys() if alive else ["finished"])
            runs.append(f"{delay}:{dict(state) if alive else 'finished'}")
            checked = _check(data, template, why)
            assert checked.compacted >= before, f"{why}: a compacted segment went back"
            before = checked.compacted
            if not alive:
                _all_compacted(checked, template, why)
                break
            kills += 1
        # Now one run to the end on the same directory.
        proc, done = _run_child(data)
        why = f"seed {seed}, chain {chain}: the run after the kills"
        assert proc.returncode == 0 and done, f"{why}: {proc.returncode}{_child_log(data)}"
        assert not done["errors"], f"{why}: {done}"
        assert done["segments"] == total - len(before), f"{why}: {done}"
        _all_compacted(_check(data, template, why), template, why)
        shutil.rmtree(data)
        chain += 1
    elapsed = time.monotonic() - started
    print(f"{kills} kills in {chain} chains, {elapsed:.1f} s; landed: {dict(landed)}")
    assert landed["rewriting"] + landed["mid-swap"] > 0, f"no kill cut a rewrite: {runs}"


# Where the N-th swap is cut (see compaction_child): before its .tok, .idx or .seg rename, or
# after the last one. Swaps go through partition 0's segments oldest first, then partition 1's.
SWAP_POINTS = [f"{kind}:{n}" for n in (0, 12) for kind in ("tok", "idx", "seg", "dir")]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", SWAP_POINTS)
def test_sigkill_at_each_step_of_the_swap(template: Template, tmp_path: Path, kill_at: str) -> None:
    """The child kills itself at a chosen step of a swap: the store opens as the old segment
    (filters and a new index that do not describe it are dropped, the index rebuilt) or as the
    new one, never a mix; then compaction finishes and nothing changed but the bytes."""
    data = tmp_path / "data"
    shutil.copytree(template.dir, data)
    kind, n = kill_at.split(":")
    order = [(p, b) for p in range(PARTITIONS) for b in template.segments[p]]
    p, base = order[int(n)]
    d = _partition_dirs(data)[p]
    stem = f"{base:020d}"
    original = (d / f"{stem}.seg").stat().st_size

    proc, done = _run_child(data, kill_at)
    assert proc.returncode == -signal.SIGKILL and done is None, f"{kill_at}: {_child_log(data)}"
    names = {f.name for f in d.iterdir() if f.name.startswith(stem)}
    pending = {f"{stem}.{ext}{SUFFIX}" for ext in ("tok", "idx", "seg")}
    if kind == "tok":  # nothing renamed yet
        assert pending <= names and f"{stem}.tok" not in names, names
    elif kind == "idx":  # the filters renamed: they describe the new bytes, not these
        assert pending - names == {f"{stem}.tok{SUFFIX}"}, names
        assert _tok_covered(d / f"{stem}.tok") < original
    elif kind == "seg":  # filters and index renamed, the old bytes still in place
        assert names & pending == {f"{stem}.seg{SUFFIX}"}, names
        index = (d / f"{stem}.idx").read_bytes()
        assert SegmentIndex.decode(base, index, original) is None, "a stale index must not fit"
    else:  # all renamed
        assert not names & pending, names
    assert (d / f"{stem}.seg").stat().st_size == (
        original if kind != "dir" else _tok_covered(d / f"{stem}.tok")
    )

    checked = _check(data, template, f"killed at {kill_at}")
    done_before = set(order[: int(n) + (kind == "dir")])
    assert checked.compacted == done_before, f"{kill_at}: {sorted(checked.compacted)}"
    proc, done = _run_child(data)
    assert proc.returncode == 0 and done, f"after {kill_at}: {proc.returncode}{_child_log(data)}"
    assert not done["errors"], done
    assert done["segments"] == len(order) - len(done_before), done
    _all_compacted(_check(data, template, f"after {kill_at}, compacted to the end"), template, "")


def _post_compact(url: str, answers: list[str]) -> None:
    """``POST /v1/topics/{t}/compact``; appends ``200`` or the error, ``cut`` when the
    collector was killed under it."""
    request = urllib.request.Request(f"{url}/v1/topics/{TOPIC}/compact", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=CHILD_TIMEOUT_S) as resp:
            resp.read()
            answers.append(str(resp.status))
    except urllib.error.HTTPError as exc:
        answers.append(f"{exc.code} {exc.read()[:500]!r}")
    except (urllib.error.URLError, ConnectionError):
        answers.append("cut")


@pytest.mark.slow
def test_sigkill_the_collector_while_it_compacts(template: Template, tmp_path: Path) -> None:
    """The real collector, SIGKILLed at seeded random moments while it compacts: in the
    background (``[compaction]`` enabled) or for ``POST /v1/topics/{t}/compact``. Each restart
    finds every record once; ``wharf topics compact`` then finishes the job."""
    seed = 4242
    rng = random.Random(seed)
    data = tmp_path / "data"
    shutil.copytree(template.dir, data)
    total = sum(len(b) for b in template.segments.values())
    config = tmp_path / "collector.toml"
    collector = CollectorProcess(data, args=["--config", str(config)])
    before: set[tuple[int, int]] = set()
    landed: list[str] = []
    for k in range(6):
        background = k % 2 == 0
        config.write_text(
            f"[compaction]\nenabled = {'true' if background else 'false'}\nlevel = {LEVEL}\n"
            "cpu_share = 1.0\ncheck_s = 3600\n"
        )
        delay = round(rng.uniform(0.0, template.full_run_s / 2), 4)
        why = f"seed {seed}, kill {k} ({'background' if background else 'POST'}), {delay} s"
        collector.start()
        poster = None
        answers: list[str] = []
        if not background:
            args = (collector.url, answers)
            poster = threading.Thread(target=_post_compact, args=args, daemon=True)
            poster.start()
        time.sleep(delay)
        collector.kill()
        if poster is not None:
            poster.join(CHILD_TIMEOUT_S)
            assert not poster.is_alive(), why
            assert answers in (["200"], ["cut"]), f"{why}: {answers}{collector.tail()}"
        landed.append(f"{why}: {dict(_crash_state(_partition_dirs(data)))}")
        checked = _check(data, template, why)
        assert checked.compacted >= before, f"{why}: a compacted segment went back"
        before = checked.compacted
    config.write_text(f"[compaction]\nenabled = false\nlevel = {LEVEL}\n")
    collector.start()
    try:
        done = collector.wharf("topics", "compact", TOPIC, "-o", "json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert not result["errors"], done.stdout
        assert result["segments"] == total - len(before), (result, landed)
    finally:
        assert collector.stop() == 0, collector.tail()
    _all_compacted(_check(data, template, "after wharf topics compact"), template, "")
    print("\n".join(landed))


def _ingest_and_kill(data: Path, delay: float) -> list[tuple[int, int, int]]:
    """Start the ingest child, SIGKILL it ``delay`` s after its first ack; every ack it
    printed, those still in the pipe included."""
    with _log_of(data).open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.compaction_ingest_child", str(data)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            bufsize=0,
        )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = b""
    kill_at = None
    hard_stop = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while time.monotonic() < hard_stop and (kill_at is None or time.monotonic() < kill_at):
            ready, _, _ = select.select([fd], [], [], 0.01)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, f"the child exited: {proc.wait()}{_child_log(data)}"
                out += chunk
                if kill_at is None and b"\n" in out:
                    kill_at = time.monotonic() + delay
        assert kill_at is not None, f"no ack in {CHILD_TIMEOUT_S:g} s{_child_log(data)}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out += proc.stdout.read()  # acks in the pipe when it died were acknowledged too
        proc.stdout.close()
    lines = out.split(b"\n")[:-1]  # a line cut by the kill is no ack
    return [(int(a), int(b), int(c)) for a, b, c in (x.split() for x in lines)]


@pytest.mark.slow
def test_sigkill_while_appends_and_background_compaction_run(tmp_path: Path) -> None:
    """A child appends as fast as it is acknowledged while its background compactor rewrites
    each segment the appends seal (swaps on the committer thread between append turns);
    SIGKILLed at seeded random moments. After each restart every acknowledged record is there,
    record n at offset n exactly once, resends are duplicates, and no file is left behind."""
    from tests.storage.compaction_ingest_child import PER_BATCH as PER  # noqa: PLC0415
    from tests.storage.compaction_ingest_child import TOPIC as INGEST  # noqa: PLC0415
    from tests.storage.compaction_ingest_child import WIDTH as W  # noqa: PLC0415
    from tests.storage.compaction_ingest_child import batch, line  # noqa: PLC0415

    seed = 8128
    rng = random.Random(seed)
    data = tmp_path / "data"
    acked_end = 0
    compacted_max = 0
    landed: Counter[str] = Counter()
    for k in range(12):
        delay = round(rng.uniform(0.05, 0.5), 4)
        why = f"seed {seed}, kill {k}, {delay} s after the first ack"
        acks = _ingest_and_kill(data, delay)
        for base, start, count in acks:
            assert (base, count) == (start, PER), f"{why}: record n is stored at offset n, once"
            acked_end = max(acked_end, base + count)
        landed.update(_crash_state(_partition_dirs(data, INGEST, 1)).keys())
        with Store(data) as store:
            part = store.partition(INGEST, 0)
            end = part.end_offset
            assert end >= acked_end, (
                f"{why}: acknowledged up to {acked_end}, the store ends at {end}"
            )
            expected = 0
            for b in part.read(0, max_bytes=1 << 40):
                assert b.header.base_offset == expected, f"{why}: offsets are contiguous"
                for i, r in enumerate(b.records()):
                    n = expected + i
                    assert (r.line, r.offset) == (line(n), n * W), f"{why}: record at offset {n}"
                expected = b.header.next_offset
            assert expected == end, why
            compacted = _check_files(part, why)
            compacted_max = max(compacted_max, len(compacted))
            for first in {0, max(0, acked_end - PER)}:
                res = store.append(INGEST, 0, batch(first))
                assert res.duplicate and res.record_count == 0, f"{why}: resend of {first}: {res}"
            assert part.end_offset == end, f"{why}: a resend was stored"
    # Then the rest compacted by hand: everything sealed is, and every record is unchanged.
    with Store(data, compaction_settings=SETTINGS) as store:
        assert not store.compact(INGEST).errors
        part = store.partition(INGEST, 0)
        assert len(_check_files(part, "the last compaction")) == len(part.segments) - 1
        stored = [r.line for b in part.read(0, max_bytes=1 << 40) for r in b.records()]
        assert stored == [line(n) for n in range(part.end_offset)]
    print(f"acked {acked_end}, at most {compacted_max} segments compacted, landed {dict(landed)}")
    assert compacted_max > 0, "the background compactor compacted nothing before the kills"
