"""Builder processes (``shipper.building``): a batch built from deferred runs in a child process
is byte for byte the batch the reading thread's path builds; builds overlap and come back in
order; a child that dies mid-job is an error, not a hang; children die with their parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from parsers import Record, get_parser
from parsers.lines import LineRun
from shipper.batcher import Batcher, Cut, FileTrack
from shipper.building import (
    BuilderDied,
    Built,
    JobRunner,
    ProcessBuilders,
    ThreadBuilder,
    job_of,
)
from shipper.runs import ParseSpec, RunParts
from tests.parsers._vectors import LOGS_DIR
from wharf import batch as wb
from wharf.errors import BatchTooLarge, InvalidArgument

PRODUCER = bytes(range(16))
NOW = 1_700_000_000_123_456_789

_CLF = [
    '10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /a HTTP/1.1" 200 2326 "-" "curl/8"',
    '10.0.0.2 - bob [10/Oct/2023:13:55:37 +0200] "POST /b?x=1 HTTP/1.1" 503 - "http://r/" "Mo"',
    "not an access line at all",
    '::1 - - [29/Feb/2024:00:00:00 -0530] "GET / HTTP/2.0" 404 0 "-" "-"',
]
_JSON = [
    '{"ts": "2024-01-02T03:04:05Z", "level": "warn", "msg": "disk", "n": 3}',
    '{"msg": "no time", "nested": {"a": [1, 2]}}',
    "[1, 2, 3]",
    "{broken",
]


def _lines(texts: list[str], offset: int = 0) -> LineRun:
    blob = "\n".join(texts).encode()
    return LineRun(blob, len(texts), offset)


def _cut(spec: ParseSpec, texts: list[str], *, deferred: bool, extra: Sequence[Record] = ()) -> Cut:
    """One topic's cut of ``texts`` read from one file (and ``extra`` records after them)."""
    runs = RunParts(get_parser(spec.parser, **spec.options), dict(spec.fields))
    if deferred:
        runs.deferred = spec
    run, _ = runs.part(_lines(texts), now_ns=NOW, host="h", source="/var/log/x", file_id="f1")
    assert (run.unparsed is not None) == deferred
    batcher = Batcher(64 << 20, 1.0)
    track = FileTrack("f1", 0)
    assert batcher.add_run("t", track, run, 0.0) == []
    if extra:
        batcher.add_many("t", track, list(extra), [1] * len(extra), [run.end] * len(extra), 0.0)
    cut = batcher.cut("t")
    assert cut is not None
    return cut


SPECS = [
    ParseSpec("raw"),
    ParseSpec("raw", fields={"env": "prod", "n": 1}),
    ParseSpec("clf"),
    ParseSpec("clf", fields={"dc": "x"}),
    ParseSpec("json"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.parser}{'+fields' * bool(s.fields)}")
@pytest.mark.parametrize("version", [1, 2])
def test_job_in_a_runner_builds_the_batch_the_reader_path_builds(
    spec: ParseSpec, version: int
) -> None:
    texts = _JSON if spec.parser == "json" else _CLF
    extra = [Record(ts=5, line="a record", host="h", source="s", file_id="f1", offset=999)]
    direct = _cut(spec, texts, deferred=False, extra=extra)
    deferred = _cut(spec, texts, deferred=True, extra=extra)
    want = direct.build(producer_id=PRODUCER, producer_seq=7, version=version)
    with pytest.raises(Exception, match="still to be parsed"):
        deferred.build(producer_id=PRODUCER, producer_seq=7, version=version)
    reply = JobRunner().run(job_of(deferred, producer_id=PRODUCER, seq=7, version=version))
    assert reply.code == ""
    assert reply.data == want
    errors = sum(1 for t in texts if get_parser(spec.parser).parse(t).error is not None)
    assert reply.parse_errors == errors


def test_real_access_log_through_a_runner_equals_the_reader_path() -> None:
    path = LOGS_DIR / "apache_combined.log"
    texts = path.read_text(errors="replace").replace("\r", "").splitlines()[:5000]
    spec = ParseSpec("clf")
    want = _cut(spec, texts, deferred=False).build(producer_id=PRODUCER, producer_seq=1)
    job = job_of(_cut(spec, texts, deferred=True), producer_id=PRODUCER, seq=1, version=2)
    assert JobRunner().run(job).data == want


def test_a_batch_that_cannot_be_built_comes_back_as_its_typed_error() -> None:
    cut = _cut(ParseSpec("raw"), ["x"], deferred=True)
    job = job_of(cut, producer_id=PRODUCER, seq=1, version=2)
    job.parts[0].blob = b"y" * (wb.MAX_LINES_BYTES + 1)  # type: ignore[union-attr]
    reply = JobRunner().run(job)
    assert reply.data == b""
    assert reply.code == BatchTooLarge.code


def _cuts(n: int) -> list[Cut]:
    return [
        _cut(ParseSpec("clf"), [f"{t} #{i}" for t in _CLF] * 50, deferred=True) for i in range(n)
    ]


def test_processes_build_concurrently_and_equal_the_thread() -> None:
    async def main() -> None:
        builders = ProcessBuilders(2)
        await builders.start()
        try:
            cuts = _cuts(6)
            got = await asyncio.gather(
                *(
                    builders.build(c, producer_id=PRODUCER, seq=i, version=2)
                    for i, c in enumerate(cuts)
                )
            )
        finally:
            await builders.close()
        runner = JobRunner()
        for i, (c, built) in enumerate(zip(cuts, got, strict=True)):
            reply = runner.run(job_of(c, producer_id=PRODUCER, seq=i, version=2))
            assert built.data == reply.data
            assert built.parse_errors == 50  # the one non-access line, 50 times
            assert [r.line for r in wb.read(built.data)][:4] == [f"{t} #{i}" for t in _CLF]

    asyncio.run(main())


@pytest.mark.parametrize("spec", [ParseSpec("clf", fields={"dc": "x"}), ParseSpec("json")])
def test_the_thread_parses_deferred_runs_as_the_reader_would(spec: ParseSpec) -> None:
    texts = (_CLF if spec.parser == "clf" else _JSON) * 25
    want = _cut(spec, texts, deferred=False).build(producer_id=PRODUCER, producer_seq=1)
    cut = _cut(spec, texts, deferred=True)

    async def main() -> Built:
        return await ThreadBuilder().build(cut, producer_id=PRODUCER, seq=1, version=wb.VERSION)

    built = asyncio.run(main())
    assert built.data == want
    parser = get_parser(spec.parser)
    assert built.parse_errors == sum(1 for t in texts if parser.parse(t).error is not None) > 0


def test_a_run_still_to_be_parsed_is_never_built_as_if_parsed() -> None:
    cut = _cut(ParseSpec("clf"), _CLF, deferred=True)
    with pytest.raises(InvalidArgument, match="still to be parsed"):
        cut.build(producer_id=PRODUCER, producer_seq=1)


def test_a_child_killed_mid_job_is_an_error_not_a_hang() -> None:
    async def main() -> None:
        builders = ProcessBuilders(1)
        await builders.start()
        try:
            os.kill(builders.pids[0], signal.SIGKILL)
            with pytest.raises(BuilderDied, match=r"ended mid-job \(exit status -9\)"):
                await asyncio.wait_for(
                    builders.build(_cuts(1)[0], producer_id=PRODUCER, seq=1, version=2), 30
                )
        finally:
            await builders.close()

    asyncio.run(main())


_PARENT = """
import asyncio, sys
from shipper.building import ProcessBuilders

async def main():
    b = ProcessBuilders(2)
    await b.start()
    print(*b.pids, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_children_exit_when_their_parent_is_killed() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            pids = [int(p) for p in parent.stdout.readline().split()]
            assert len(pids) == 2 and all(_alive(p) for p in pids)
            parent.kill()
            parent.wait(10)
            deadline = time.monotonic() + 20
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(_alive(p) for p in pids), "a builder process outlived its parent"
        finally:
            parent.kill()


def test_a_child_that_dies_between_jobs_is_seen_at_once() -> None:
    async def main() -> None:
        builders = ProcessBuilders(2)
        await builders.start()
        try:
            watch = asyncio.create_task(builders.watch())
            victim = builders.pids[1]
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(BuilderDied, match=rf"process {victim} exited \(exit status -9\)"):
                await asyncio.wait_for(watch, 30)
        finally:
            await builders.close()

    asyncio.run(main())
