"""The shipper daemon's memory: ``wharf shipper run`` starts without the CLI's libraries, reads
its options exactly as typer would, and stays far below twice its RSS goal with 1,000 files.

The goal itself (60 MB peak on bench/shipper.py's runs) is the benchmark's to measure; the
bound here is a loose regression guard (twice the goal), never a tight memory check.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
import typer.main
from hypothesis import given
from hypothesis import strategies as st

from cli import shipper_cmd, shipper_run
from tests.harness import (
    ROOT,
    WHARF,
    CollectorProcess,
    ShipperProcess,
    clean_env,
    reserve_port,
    wait_caught_up,
    wait_for,
    write_shipper_config,
)
from tests.harness.cli import run_wharf_text
from tests.shipper.helpers import assert_exactly_once, line, numbers, proc_rss_peak_kb

GOAL_MB = 60  # bench/shipper.py's TARGET_RSS_MB
# Modules the daemon never needs: the CLI's (typer, click, rich, importlib.metadata for
# --version) and the metrics endpoint's, which only ``metrics_listen`` loads.
NOT_IN_DAEMON = ("typer", "click", "rich", "importlib.metadata", "aiohttp", "prometheus_client")

# -- the options, as click reads them ----------------------------------------------------------

_RUN = typer.main.get_command(shipper_cmd.app).commands["run"]  # type: ignore[attr-defined]
_TOKENS = [
    "--config", "-c", "--log-level", "a.toml", "/etc/b.toml", "debug", "warning", "-",
    "--config=c.toml", "--config=", "--log-level=info", "-cd.toml", "-c=e.toml", "--", "--help",
    "--version", "-x", "--conf", "run", "x y.toml", "--config=--log-level",
]  # fmt: skip


def _click_reads(args: list[str]) -> tuple[Path, str]:
    ctx = _RUN.make_context("run", list(args))
    return Path(ctx.params["config"]), ctx.params["log_level"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], (Path("/etc/wharf/shipper.toml"), "info")),
        (["--config", "a.toml"], (Path("a.toml"), "info")),
        (["-c", "a.toml", "--log-level", "debug"], (Path("a.toml"), "debug")),
        (["--config=a.toml", "--log-level=warning"], (Path("a.toml"), "warning")),
        (["-ca.toml"], (Path("a.toml"), "info")),
        (["-c", "a.toml", "--config", "b.toml"], (Path("b.toml"), "info")),  # the last wins
    ],
)
def test_the_commands_own_options_run_without_typer(
    args: list[str], expected: tuple[Path, str]
) -> None:
    assert shipper_run.parse(args) == expected == _click_reads(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--config"],  # a value missing: typer says so
        ["--bogus"],
        ["--config", "a.toml", "extra"],
        ["--config", "--log-level"],  # a value that looks like an option
        ["--config="],
        ["--", "--config", "a.toml"],
    ],
)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert shipper_run.parse(args) is None


@given(st.lists(st.sampled_from(_TOKENS), max_size=6))
def test_whatever_runs_without_typer_is_what_click_reads(args: list[str]) -> None:
    parsed = shipper_run.parse(args)
    if parsed is not None:
        assert parsed == _click_reads(args)


# -- the daemon's process ----------------------------------------------------------------------


def test_the_daemon_imports_no_cli_library(tmp_path: Path) -> None:
    """``wharf shipper run`` (the console script, as systemd runs it), ready and stopped: its
    import log names the daemon's modules and none of ``NOT_IN_DAEMON``."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(line(0))
    nobody = reserve_port()  # an address nothing answers: the daemon starts and keeps trying
    config = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=tmp_path / "state",
        collectors=[f"127.0.0.1:{nobody.port}"],
        inputs=[{"paths": [str(logs / "*.log")], "topic": "t"}],
    )
    err = tmp_path / "stderr"
    with err.open("wb") as out:
        proc = subprocess.Popen(
            [WHARF, "shipper", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=clean_env(PYTHONPROFILEIMPORTTIME="1"),
        )
        try:
            wait_for(
                lambda: proc.poll() is not None or "shipper ready" in err.read_text(), 60, "ready"
            )
            assert proc.poll() is None, err.read_text()[-2000:]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, err.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            nobody.release()
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", err.read_text(), re.M))
    assert {"shipper.daemon", "watchdog.observers", "cli.shipper_run"} <= imported
    unwanted = {m for m in imported if m.split(".")[0] in NOT_IN_DAEMON or m in NOT_IN_DAEMON}
    assert not unwanted, f"the daemon imported {sorted(unwanted)}"


def test_help_and_mistakes_still_go_through_typer() -> None:
    env = clean_env(COLUMNS="100")
    helped = run_wharf_text(["shipper", "run", "--help"], env)
    assert helped.returncode == 0, helped.stderr
    assert "Tail the configured files" in helped.stdout and "--log-level" in helped.stdout
    wrong = run_wharf_text(["shipper", "run", "--bogus"], env)
    assert wrong.returncode == 2 and "No such option: --bogus" in wrong.stderr


@pytest.mark.slow
def test_1000_files_stay_under_twice_the_goal(tmp_path: Path) -> None:
    """1,000 followed files, 20 lines appended to each: all shipped once, and the daemon's
    peak RSS (start-up included) under twice the 60 MB goal."""
    logs = tmp_path / "logs"
    logs.mkdir()
    n_files, per_file = 1000, 20
    paths = [logs / f"app-{k:04d}.log" for k in range(n_files)]
    for p in paths:
        p.touch()
    col = CollectorProcess(tmp_path / "data").start()
    state = tmp_path / "state"
    config = write_shipper_config(
        tmp_path / "shipper.toml",
        state_dir=state,
        collectors=[col.address],
        inputs=[{"paths": [str(logs / "*.log")], "topic": "many"}],
        status_interval_s=1.0,
    )
    sh = ShipperProcess(config, tmp_path / "shipper.log").start()
    try:
        for k, p in enumerate(paths):
            with p.open("ab") as f:
                f.writelines(line(k * per_file + i) for i in range(per_file))
        wait_caught_up(state, timeout=120, min_files=n_files)
        peak_mb = proc_rss_peak_kb(sh.pid) / 1024
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    print(f"\n1,000 files: peak RSS {peak_mb:.1f} MB")
    assert peak_mb < 2 * GOAL_MB, f"peak RSS {peak_mb:.1f} MB with 1,000 files"
    assert_exactly_once(numbers(col.lines("many")), range(n_files * per_file))
