"""What shipper tests share besides the harness: the usual scene (a collector, a config, a
shipper not yet started), numbered-line writers and exactly-once checks, /proc readings."""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from tests.harness import CollectorProcess, ShipperProcess, write_shipper_config

NUM = re.compile(r"n=(\d+)")


class Scene(NamedTuple):
    """The usual setting of a shipper test: ``logs/`` holds the files to tail, a collector is
    running, ``state/`` is the shipper's, and its config is written (the shipper not started:
    tests often write files first)."""

    logs: Path
    state: Path
    col: CollectorProcess
    config: Path
    shipper: ShipperProcess


def scene(
    tmp_path: Path, inputs: list[dict[str, Any]], *, fixed_ports: bool = False, **knobs: Any
) -> Scene:
    """A ``Scene`` under ``tmp_path``; input ``paths`` are globs relative to ``logs/``, other
    keyword arguments are config knobs (see ``write_shipper_config``). ``fixed_ports`` for a
    test that restarts the collector under the running shipper (its address must not move)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    col = CollectorProcess(tmp_path / "data", fixed_ports=fixed_ports).start()
    config = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=state,
        collectors=[col.address],
        inputs=[{**inp, "paths": [str(logs / p) for p in inp["paths"]]} for inp in inputs],
        **knobs,
    )
    return Scene(logs, state, col, config, ShipperProcess(config, tmp_path / "shipper.log"))


def line(n: int, width: int = 100) -> bytes:
    """Numbered line of ``width`` bytes, newline included."""
    head = f"n={n:09d} "
    return (head + "x" * (width - len(head) - 1) + "\n").encode()


def numbers(lines: Iterable[str]) -> list[int]:
    """Every ``n=`` number found, once per occurrence."""
    return [int(m.group(1)) for text in lines for m in NUM.finditer(text)]


def assert_exactly_once(found: list[int], expected: Iterable[int]) -> None:
    counts = collections.Counter(found)
    dup = sorted(n for n, c in counts.items() if c > 1)
    want = set(expected)
    missing = sorted(want - set(counts))
    extra = sorted(set(counts) - want)
    assert not dup, f"{len(dup)} numbers stored more than once, e.g. {dup[:10]}"
    assert not missing, f"{len(missing)} numbers missing, in runs {_runs(missing)[:10]}"
    assert not extra, f"{len(extra)} unexpected numbers, e.g. {extra[:10]}"


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted numbers as (first, last) runs of consecutive ones: a loss reads as whole files,
    batches or lines at a glance."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def proc_rss_peak_kb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
    raise AssertionError("no VmHWM")


def proc_cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
