"""Java and Python stack traces split across read buffers, rotations and restarts come out as
one event each."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

from tests.harness import status_of, wait_caught_up
from tests.shipper.helpers import scene

FRAMES = 6


def java(k: int) -> tuple[bytes, bytes]:
    head = f"2024-05-01 12:00:00 ERROR request {k} failed\njava.lang.IllegalStateException: trace={k}\n"
    frames = "".join(f"\tat com.example.Svc.call{j}(Svc.java:{j})\n" for j in range(FRAMES))
    tail = f"Caused by: java.io.IOException: cause={k}\n\tat com.example.Io.read(Io.java:9)\n"
    whole = (head + frames + tail).encode()
    cut = len(whole) // 2
    return whole[:cut], whole[cut:]


def python(k: int) -> tuple[bytes, bytes]:
    head = "Traceback (most recent call last):\n"
    frames = "".join(f'  File "app.py", line {j}, in f{j}\n    f{j + 1}()\n' for j in range(FRAMES))
    whole = (f"INFO before {k}\n" + head + frames + f"ValueError: trace={k}\n").encode()
    cut = len(whole) // 2 + 3
    return whole[:cut], whole[cut:]


@pytest.mark.slow
def test_stack_traces_one_event_each_across_buffers_rotations_and_restarts(
    tmp_path: Path,
) -> None:
    """Each trace is written in two halves 50 ms apart, read 64 bytes at a time (every trace
    spans many reads), the files rotate by rename every 40 traces, and the shipper is
    SIGKILLed three times and SIGTERMed once mid-stream. Every trace is one event, whole."""
    s = scene(
        tmp_path,
        [
            {"paths": ["java*.log"], "topic": "ml", "multiline": "java"},
            {
                "paths": ["py*.log"],
                "topic": "ml",
                "multiline": {"preset": "python", "flush_timeout_s": 1.0},
            },
        ],
        read_buffer_bytes=64,
    )
    logs, state, col, sh = s.logs, s.state, s.col, s.shipper.start()
    traces = 160

    def writer(name: str, make: object) -> None:
        live = logs / f"{name}.log"
        f = live.open("ab")
        for k in range(traces):
            a, b = make(k)  # type: ignore[operator]
            f.write(a)
            f.flush()
            time.sleep(0.05)
            f.write(b)
            f.flush()
            if k % 40 == 39:
                f.close()
                os.rename(live, logs / f"{name}.log.{k}")
                f = live.open("ab")
        f.close()

    threads = [
        threading.Thread(target=writer, args=("java", java)),
        threading.Thread(target=writer, args=("py", python)),
    ]
    for t in threads:
        t.start()
    try:
        for k in range(4):
            time.sleep(1.6)
            if k == 2:
                assert sh.term() == 0
            else:
                sh.kill()
            sh.start()
        for t in threads:
            t.join(60)
        wait_caught_up(state, min_files=2)
        forced = status_of(state)["counters"]["forced_cuts"]
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    lines = col.lines("ml")
    # java: the exception line, the frames, "Caused by" and its frame; python: the header,
    # two lines per frame, and the exception line.
    for kind, frames_expected in (("java", FRAMES + 3), ("py", 2 * FRAMES + 2)):
        events = [
            s
            for s in lines
            if re.search(r"trace=\d+", s)
            and (("Exception" in s) if kind == "java" else ("Traceback" in s))
        ]
        ks = sorted(int(re.search(r"trace=(\d+)", s).group(1)) for s in events)  # type: ignore[union-attr]
        assert ks == list(range(traces)), f"{kind}: traces missing or doubled"
        for s in events:
            assert s.count("\n") == frames_expected - 1, f"{kind} trace split:\n{s}"
    # The lines around the traces are their own events, once each.
    befores = [s for s in lines if s.startswith(("INFO before", "2024-05-01"))]
    assert len(befores) == len(set(befores)) == 2 * traces
    assert forced <= 4  # only end-of-file cuts of rotated files, never inside a trace
