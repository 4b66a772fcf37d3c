"""Building cut batches: parsing deferred runs, encoding, compressing. In a worker thread (the
default) or in builder processes (``builders = N``), the sender seeing the same batches in the
same order either way.

The reader only frames runs of whole lines (``shipper.runs``: a run is ``deferred``, its spec
says how to parse it); the builder parses them (``Finisher``), encodes and compresses. Why
processes: a thread can compress (zstd releases the GIL) but not parse. For ``clf`` or ``json``
the block parse is most of a line's cost and holds the GIL, so one core is the limit. With
``builders = N``, ``N`` processes parse, build and compress on the other cores.

The processes are plain children (``python -m shipper.build_worker``) talking over their stdin
and stdout, one job at a time each: a length-prefixed msgpack ``Job`` in, a ``Reply`` out. Not
``concurrent.futures.ProcessPoolExecutor``: under ``spawn``/``forkserver`` its children import
the parent's ``__main__`` again (for ``wharf`` that is the whole CLI: typer, rich, ~20 MB per
child), ``fork`` is unsafe in a process with threads, and a pool's children outlive a parent
killed with SIGKILL. Here a child reads EOF on its stdin the moment the parent dies, by any
means, and exits: nothing is left behind.

Crash semantics are the daemon's: a job's batch enters the outbox only when its reply is in, in
sequence order (``Delivery.builder``), and a child that dies mid-job is an internal error that
stops the daemon (exit status 2), to be restarted from its checkpoints by systemd: nothing
acknowledged depends on a child, so nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Final, NamedTuple, Protocol

import msgspec

from shipper.batcher import Cut
from shipper.runs import ParseSpec, RunParts
from wharf import batch as wb
from wharf.errors import WharfError, error_from
from wharf.record import Record

log = logging.getLogger(__name__)

_LENGTH: Final = 4  # big-endian length prefix of a job or a reply
_CLOSE_TIMEOUT_S: Final = 5.0
_job_enc = msgspec.msgpack.Encoder()


class Built(NamedTuple):
    """A built batch and how many of its lines failed to parse (counted where they were)."""

    data: bytes
    parse_errors: int


class Builder(Protocol):
    """Builds cuts into batches; ``capacity`` builds may run at once."""

    @property
    def capacity(self) -> int: ...

    async def build(self, cut: Cut, *, producer_id: bytes, seq: int, version: int) -> Built:
        """The batch of ``cut``; raises ``WharfError`` for one that cannot be built."""
        ...

    async def close(self) -> None:
        """Stop whatever runs (children); builds in progress are cancelled."""
        ...


class Finisher:
    """Parses deferred runs (``shipper.runs``) where a batch is built: one ``RunParts`` per
    distinct spec, made at its first use."""

    def __init__(self) -> None:
        self._parts: dict[bytes, RunParts] = {}

    def runs_of(self, spec: ParseSpec) -> RunParts:
        """The parts that parse runs as ``spec`` says."""
        key = _job_enc.encode(spec)
        runs = self._parts.get(key)
        if runs is None:
            runs = self._parts[key] = RunParts.of(spec)
        return runs

    def parts(self, parts: Iterable[wb.Part]) -> tuple[list[wb.Part], int]:
        """``parts`` with every deferred run parsed, and how many lines failed to parse."""
        out: list[wb.Part] = []
        errors = 0
        for part in parts:
            if isinstance(part, wb.Run) and isinstance(part.unparsed, ParseSpec):
                parsed, failed = self.runs_of(part.unparsed).finish(part)
                out.append(parsed)
                errors += failed
            else:
                out.append(part)
        return out, errors


class ThreadBuilder:
    """Builds in a worker thread, one at a time (the default). Deferred runs are parsed
    there too: not faster (parsing holds the GIL), but the parsed columns of a batch exist
    only while it is built, not for as long as it is pending."""

    capacity = 1

    def __init__(self) -> None:
        self._finisher = Finisher()

    async def build(self, cut: Cut, *, producer_id: bytes, seq: int, version: int) -> Built:
        """See ``Builder.build``."""
        return await asyncio.to_thread(self._build, cut, producer_id, seq, version)

    def _build(self, cut: Cut, producer_id: bytes, seq: int, version: int) -> Built:
        parts, errors = self._finisher.parts(cut.parts)
        data = wb.build_parts(
            parts, producer_id=producer_id, producer_seq=seq, spans=cut.spans, version=version
        )
        return Built(data, errors)

    async def close(self) -> None:
        """Nothing to stop."""


# -- jobs: what travels to a builder process ---------------------------------------------------


class RunMsg(msgspec.Struct, array_like=True, tag=0):
    """A run of lines as read, to be parsed with ``specs[spec]`` of its job."""

    blob: bytes
    count: int
    offset: int
    ts: int  # for lines without a timestamp
    host: str
    source: str
    file_id: str
    spec: int


class RecordsMsg(msgspec.Struct, array_like=True, tag=1):
    """Records made already (lines that took the per-line path)."""

    records: list[Record]


class Job(msgspec.Struct, array_like=True):
    """One cut, and how to build it."""

    specs: list[ParseSpec]
    parts: list[RunMsg | RecordsMsg]
    spans: list[wb.Span]
    producer_id: bytes
    seq: int
    version: int


class Reply(msgspec.Struct, array_like=True):
    """The batch, or why there is none (a ``WharfError``'s code and message)."""

    data: bytes = b""
    parse_errors: int = 0
    code: str = ""
    message: str = ""


_reply_dec = msgspec.msgpack.Decoder(Reply)


def job_of(cut: Cut, *, producer_id: bytes, seq: int, version: int) -> Job:
    """``cut`` as a job. A run already parsed (one read before its input deferred) travels
    as records: rare, correct, slower."""
    specs: list[ParseSpec] = []
    index: dict[bytes, int] = {}
    parts: list[RunMsg | RecordsMsg] = []
    for part in cut.parts:
        if not isinstance(part, wb.Run):
            parts.append(RecordsMsg(list(part)))
        elif isinstance(part.unparsed, ParseSpec) and isinstance(part.ts, int):
            key = _job_enc.encode(part.unparsed)
            at = index.get(key)
            if at is None:
                at = index[key] = len(specs)
                specs.append(part.unparsed)
            parts.append(
                RunMsg(
                    part.blob,
                    part.count,
                    part.offset,
                    part.ts,
                    part.host,
                    part.source,
                    part.file_id,
                    at,
                )
            )
        else:
            parts.append(RecordsMsg(part.records()))
    return Job(specs, parts, cut.spans, producer_id, seq, version)


class JobRunner:
    """Runs jobs (in a builder process; pure otherwise): one ``RunParts`` per distinct spec."""

    def __init__(self) -> None:
        self._finisher = Finisher()

    def run(self, job: Job) -> Reply:
        """The reply to ``job``. A bug raises (the process then dies, loudly)."""
        runs = [self._finisher.runs_of(spec) for spec in job.specs]
        parts: list[wb.Part] = []
        errors = 0
        for m in job.parts:
            if isinstance(m, RecordsMsg):
                parts.append(m.records)
                continue
            raw = wb.Run(
                m.blob, m.count, m.offset, ts=m.ts, host=m.host, source=m.source, file_id=m.file_id
            )
            run, failed = runs[m.spec].finish(raw)
            parts.append(run)
            errors += failed
        try:
            data = wb.build_parts(
                parts,
                producer_id=job.producer_id,
                producer_seq=job.seq,
                spans=job.spans,
                version=job.version,
            )
        except WharfError as exc:
            return Reply(parse_errors=errors, code=exc.code, message=str(exc))
        return Reply(data, errors)


# -- the processes ------------------------------------------------------------------------------


class BuilderDied(RuntimeError):
    """A builder process ended mid-job (a bug, or killed): the daemon stops (module docstring)."""


class _Child:
    __slots__ = ("proc",)

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, frame: bytes) -> Reply:
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(frame)
            await proc.stdin.drain()
            size = int.from_bytes(await proc.stdout.readexactly(_LENGTH), "big")
            body = await proc.stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            status = await proc.wait()
            raise BuilderDied(
                f"builder process {proc.pid} ended mid-job (exit status {status})"
            ) from exc
        return _reply_dec.decode(body)


class ProcessBuilders:
    """``count`` builder processes, each one job at a time (see the module docstring)."""

    def __init__(self, count: int, *, command: Callable[[], list[str]] | None = None) -> None:
        self.count = count
        self._command = command or (lambda: [sys.executable, "-m", "shipper.build_worker"])
        self._children: list[_Child] = []
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()

    @property
    def capacity(self) -> int:
        """One build per process."""
        return self.count

    @property
    def pids(self) -> list[int]:
        """The children's process ids."""
        return [c.proc.pid for c in self._children]

    async def start(self) -> None:
        """Start the processes (their start-up, imports, runs while the daemon starts)."""
        for _ in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # stderr inherited: a child's traceback lands in the daemon's log (journal)
            )
            child = _Child(proc)
            self._children.append(child)
            self._idle.put_nowait(child)

    async def watch(self) -> None:
        """Never return; raise ``BuilderDied`` the moment a child exits, between jobs too
        (killed, or out of memory): a daemon runs this as a task, and stops. Cancel it before
        ``close``."""
        loop = asyncio.get_running_loop()
        waits = {loop.create_task(c.proc.wait()): c for c in self._children}
        if not waits:
            await asyncio.Event().wait()  # no children, nothing to watch
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        task = done.pop()
        child = waits[task]
        raise BuilderDied(f"builder process {child.proc.pid} exited (exit status {task.result()})")

    async def build(self, cut: Cut, *, producer_id: bytes, seq: int, version: int) -> Built:
        """See ``Builder.build``; ``BuilderDied`` if the child ends mid-job."""
        body = _job_enc.encode(job_of(cut, producer_id=producer_id, seq=seq, version=version))
        frame = len(body).to_bytes(_LENGTH, "big") + body
        child = await self._idle.get()
        try:
            reply = await child.ask(frame)
        except asyncio.CancelledError:
            # Its reply may still come: the child is out of step, so it goes.
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            raise
        self._idle.put_nowait(child)
        if reply.code:
            raise error_from(reply.code, reply.message)
        return Built(reply.data, reply.parse_errors)

    async def close(self) -> None:
        """End the children: EOF on their stdin, then a kill for one that lingers."""
        for child in self._children:
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        for child in self._children:
            try:
                await asyncio.wait_for(child.proc.wait(), _CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("builder process %d did not exit: killed", child.proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                await child.proc.wait()
        self._children.clear()
