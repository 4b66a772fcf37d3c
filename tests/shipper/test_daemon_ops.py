"""Operating the daemon: SIGHUP reload, `wharf shipper status`, /metrics, SIGTERM exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.harness import (
    ROOT,
    CollectorProcess,
    ShipperProcess,
    shipper_status,
    status_of,
    wait_caught_up,
    wait_for,
    write_shipper_config,
)
from tests.shipper.helpers import assert_exactly_once, line, numbers, scene


def test_sighup_adds_and_removes_inputs_without_losing_positions(tmp_path: Path) -> None:
    """Input A stays, input B is removed, input C is added. A keeps its position (nothing
    re-sent), B's files stop, C's files start; re-adding B later resumes where B stopped."""
    logs = tmp_path / "logs"
    logs.mkdir()
    col = CollectorProcess(tmp_path / "data").start()
    state = tmp_path / "state"
    a_in = {"paths": [str(logs / "a*.log")], "topic": "ra"}
    b_in = {"paths": [str(logs / "b*.log")], "topic": "rb"}
    c_in = {"paths": [str(logs / "c*.log")], "topic": "rc", "fields": {"added": "yes"}}
    cfg_path = tmp_path / "shipper.toml"
    write_shipper_config(cfg_path, state_dir=state, collectors=[col.address], inputs=[a_in, b_in])
    (logs / "a.log").write_bytes(b"".join(line(i) for i in range(100)))
    (logs / "b.log").write_bytes(b"".join(line(i) for i in range(1000, 1100)))
    (logs / "c.log").write_bytes(b"".join(line(i) for i in range(2000, 2100)))
    sh = ShipperProcess(cfg_path, tmp_path / "shipper.log").start()
    try:
        wait_caught_up(state, min_files=2)
        write_shipper_config(
            cfg_path, state_dir=state, collectors=[col.address], inputs=[a_in, c_in]
        )
        sh.hup()
        wait_for(lambda: "reloaded" in sh.output(), 20, "the reload")
        with (logs / "a.log").open("ab") as f:
            f.write(b"".join(line(i) for i in range(100, 200)))
        with (logs / "b.log").open("ab") as f:  # not followed now
            f.write(b"".join(line(i) for i in range(1100, 1200)))
        wait_caught_up(state, min_files=2)
        paths = sorted(Path(f["path"]).name for f in status_of(state)["files"])
        assert paths == ["a.log", "c.log"]
        # B comes back: it resumes at its saved offset (1100 onwards only).
        write_shipper_config(
            cfg_path, state_dir=state, collectors=[col.address], inputs=[a_in, c_in, b_in]
        )
        sh.hup()
        wait_for(lambda: sh.output().count("reloaded") == 2, 20, "the second reload")
        wait_caught_up(state, min_files=3)
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    assert_exactly_once(numbers(col.lines("ra")), range(200))
    assert_exactly_once(numbers(col.lines("rb")), range(1000, 1200))
    c_records = col.records("rc")
    assert_exactly_once(numbers(r.line for r in c_records), range(2000, 2100))
    assert all(r.fields.get("added") == "yes" for r in c_records)


def test_status_command_metrics_and_clean_exit(tmp_path: Path) -> None:
    s = scene(
        tmp_path,
        [{"paths": ["*.log"], "topic": "st"}],
        metrics_listen="127.0.0.1:0",  # the shipper binds a port; metrics_port reads it back
        max_line_bytes=150,
    )
    logs, state, col, cfg = s.logs, s.state, s.col, s.config
    (logs / "a.log").write_bytes(b"".join(line(i) for i in range(50)) + b"z" * 200 + b"\n")
    sh = s.shipper.start()
    try:
        port = sh.metrics_port
        wait_caught_up(state)
        js = sh.status()
        assert js["running"] is True
        (f,) = js["files"]
        assert f["path"].endswith("a.log") and f["offset"] == f["size"] == 50 * 100 + 201
        assert f["lag_bytes"] == 0 and f["rotations"] == 0 and f["file_id"]
        assert js["connection"].startswith("connected") and js["spool_bytes"] == 0
        assert js["counters"]["truncated_lines"] == 1
        assert set(js["drops"]) >= {"dropped_batches_refused", "dropped_bytes_vanished"}
        table = shipper_status(cfg, "table", COLUMNS="400")
        assert "a.log" in table and "connection: connected" in table and "drops: none" in table
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert "wharf_shipper_lines_read_total 51" in text
        assert "wharf_shipper_truncated_lines_total 1" in text
        assert 'wharf_shipper_dropped_total{reason="batches_refused"} 0' in text
        assert "wharf_shipper_open_files 1" in text and "wharf_shipper_spool_bytes 0" in text
        assert sh.term() == 0
    finally:
        sh.close()
        col.stop()
    after = shipper_status(cfg)
    assert json.loads(after)["running"] is False


def test_bad_config_exits_2_with_the_key_named(tmp_path: Path) -> None:
    cfg = tmp_path / "shipper.toml"
    cfg.write_text('state_dir = "/tmp/x"\nbogus = 1\n')
    out = subprocess.run(  # noqa: PLW1510 - the exit code is the point
        [sys.executable, "-m", "cli", "shipper", "run", "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "bogus" in out.stderr and str(cfg) in out.stderr
