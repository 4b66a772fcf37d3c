"""A builder process (``python -m shipper.build_worker``; see ``shipper.building``): jobs in on
stdin, replies out on stdout, each a 4-byte big-endian length and msgpack. It imports only what
building needs (parsers, the batch format), and exits at EOF: when the daemon closes the pipe,
or dies.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import BinaryIO

import msgspec

from shipper.building import Job, JobRunner


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def serve(jobs: BinaryIO, replies: BinaryIO) -> None:
    """Answer jobs until EOF."""
    decoder = msgspec.msgpack.Decoder(Job)
    encoder = msgspec.msgpack.Encoder()
    runner = JobRunner()
    while True:
        head = _read_exactly(jobs, 4)
        if head is None:
            return
        body = _read_exactly(jobs, int.from_bytes(head, "big"))
        if body is None:
            return
        reply = encoder.encode(runner.run(decoder.decode(body)))
        replies.write(len(reply).to_bytes(4, "big") + reply)
        replies.flush()


def main() -> int:
    """Entry point; SIGINT/SIGTERM are the daemon's business (it closes our stdin)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):  # the daemon went away mid-reply
        serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
