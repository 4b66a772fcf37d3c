"""Text that is data prints as it is, brackets and all (issue 17, item 5).

typer renders help in rich markup mode and some output goes through a rich console, where
``[a-z0-9]`` or ``[eu-1]`` is taken for a style tag and vanishes. A topic-name pattern, a grep
pattern, a config key, a shipper's client name or a path must keep its brackets; the markup we
write ourselves (``[bold]`` in the examples) must still render, never show."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.text import Text

from cli import app, status_cmd
from collector.http import ingest_sessions
from shipper.transport import Producer
from tests.cli.helpers import assert_one_error_line
from tests.cli.test_output import in_terminal
from tests.harness import WHARF, CollectorProcess, IngestUnderTest, LiveServer, clean_env
from wharf import batch as wb
from wharf.record import Record

TOPIC_PATTERN = "[a-z0-9][a-z0-9._-]{0,63}"  # what wharf.topics.validate_topic enforces
# The markup we write in help text ourselves; anything else in brackets is data.
OUR_TAGS = re.compile(r"\[/?bold\]")


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WHARF, *args], capture_output=True, text=True, env=clean_env(COLUMNS="200", **env),
        timeout=60, check=False,
    )  # fmt: skip


# -- help -----------------------------------------------------------------------------------


def test_topics_create_help_shows_the_whole_name_pattern() -> None:
    done = run("topics", "create", "--help")
    assert done.returncode == 0, done.stderr
    assert f"Topic name: {TOPIC_PATTERN}." in done.stdout, done.stdout


def test_our_own_markup_in_help_renders_and_is_not_shown() -> None:
    plain = run("topics", "create", "--help").stdout
    assert "wharf topics create nginx --partitions 4 --retention 7d" in plain
    assert "[bold]" not in plain and "[/bold]" not in plain
    # On a terminal the examples are bold (SGR 1) and the prose is not: markup is still markup.
    coloured = run("topics", "create", "--help", FORCE_COLOR="1").stdout
    assert "1" in _sgr_before("wharf topics create nginx", coloured)
    assert "1" not in _sgr_before("Create a topic", coloured)
    assert "[bold]" not in coloured and TOPIC_PATTERN in coloured


def _sgr_before(text: str, output: str) -> list[str]:
    """The parameters of the colour escape right before ``text``: ``["1", "2"]`` for bold dim,
    ``[]`` for none."""
    found = re.search(rf"(?:\x1b\[([0-9;]*)m)?{re.escape(text)}", output)
    assert found, output
    return found[1].split(";") if found[1] else []


def _commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def _help_texts() -> Iterator[tuple[str, str]]:
    """(where, text) for the help of every command, argument and option of ``wharf``."""
    for path, command in _commands(typer.main.get_command(app), "wharf"):
        for part in ("help", "short_help", "epilog"):
            if text := getattr(command, part):
                yield f"{path} ({part})", text
        for param in command.params:
            if getattr(param, "help", None):
                yield f"{path} {param.name}", param.help


def test_every_help_text_renders_as_written() -> None:
    """typer's rich mode reads every help text as markup (``Text.from_markup``): what a user
    sees must be the text as written, less our own ``[bold]`` tags. This covers help built
    from constants and options added later, not only the topic name."""
    texts = dict(_help_texts())
    assert "wharf topics create topic" in texts and "wharf grep pattern" in texts  # the walk
    eaten = [
        (where, text)
        for where, text in texts.items()
        if Text.from_markup(text).plain != OUR_TAGS.sub("", text).replace("\\[", "[")
    ]
    assert eaten == []


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["grep", "-t", "web", "[abc"], "invalid regular expression '[abc': missing ]: [abc"),
        (["topics", "create", "web[eu]"], "invalid topic name 'web[eu]': character '['"),
        (["groups", "describe", "etl[eu]"], "invalid group name 'etl[eu]'"),
        (["grep", "-t", "web", "x", "--where", "[abc]=1"], "'[abc]' is not a field name"),
        (["replay", "-t", "web", "--sink", "file:/nonexistent/[eu]/out"], "/nonexistent/[eu]/out"),
    ],
)
def test_errors_keep_their_brackets(
    shipped: CollectorProcess, args: list[str], fragment: str
) -> None:
    assert_one_error_line(shipped.wharf(*args), fragment)


def test_a_config_error_keeps_its_brackets(tmp_path: Path) -> None:
    path = tmp_path / "shipper.toml"
    path.write_text(
        f'collectors = ["127.0.0.1:7070"]\nstate_dir = "{tmp_path / "state"}"\n\n'
        '[[inputs]]\npaths = ["/var/log/[ab]*.log"]\ntopic = "web[eu]"\n'
    )
    why = "inputs[0].topic: invalid topic name 'web[eu]'"
    assert_one_error_line(run("shipper", "run", "--config", str(path)), why)
    checked = run("config", "check", str(path))
    assert checked.returncode == 2 and f"{path}:6: {why}" in checked.stdout, checked.stdout


# -- output through a rich console ----------------------------------------------------------


def test_status_shows_a_shippers_client_name_with_its_brackets(tmp_path: Path) -> None:
    ingest = IngestUnderTest(tmp_path / "data")
    pid = uuid.uuid4().bytes
    producer = Producer([ingest.address], producer_id=pid, client_name="edge [eu-1]")
    try:
        with LiveServer(ingest.store, sessions=ingest_sessions(ingest.server)) as srv:
            batch = wb.build([Record(ts=1, line="hello", host="h")], producer_id=pid)
            ingest.loop.run(producer.send("app", batch))
            done = run("status", "-o", "text", WHARF_HTTP=srv.url)
            assert done.returncode == 0, done.stderr
            assert "edge [eu-1]" in done.stdout, done.stdout
            ingest.loop.run(producer.close())
    finally:
        ingest.close()


def test_status_text_escapes_what_the_collector_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unhealthy collector's error, its address, and in cluster mode the NATS servers,
    streams and errors: all data. (In process: a collector that fails this way on purpose is
    hard to make, and the text is all that is tested.)"""
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.delenv("NO_COLOR", raising=False)
    status_cmd._show(
        {
            "status": "unavailable",
            "error": "cannot write /data/[eu]/topics: disk full",
            "version": "0.1.0 [dev]",
            "topics": [{"name": "web", "partitions": 1}],
        },
        "http://[::1]:7080",
    )
    status_cmd._show_cluster(
        {
            "backend": "jetstream",
            "connected": "nats://[fd00::1]:4222",
            "servers": ["a"],
            "replicas": 3,
            "name": "wharf [eu]",
            "streams": [
                {"topic": "web", "partition": 0, "stream": "s0", "error": "no [responders]"},
                {
                    "topic": "web",
                    "partition": 1,
                    "stream": "s1",
                    "leader": None,
                    "replicas": [{"name": "nats [b]", "current": False}],
                },
            ],
        }
    )
    out = capsys.readouterr().out
    for data in (
        "unavailable: cannot write /data/[eu]/topics: disk full",
        "version 0.1.0 [dev]",
        "http://[::1]:7080",
        "connected to nats://[fd00::1]:4222",
        "name 'wharf [eu]'",
        "no [responders]",
        "nats [b] (behind)",
    ):
        assert data in out, (data, out)
    assert "[red]" not in out and "[yellow]" not in out  # our own markup still applies


def test_replay_progress_label_keeps_the_sinks_brackets(
    shipped: CollectorProcess, tmp_path: Path
) -> None:
    (tmp_path / "[eu]").mkdir()
    sink = tmp_path / "[eu]" / "out.ndjson"
    args = ["replay", "-t", "web", "--to-offset", "100", "--sink", f"file:{sink}"]
    _, err, status = in_terminal(args, shipped.env, stdout_tty=False, stderr_tty=True)
    assert status == 0, err
    assert f"web → file {sink}" in err, err
    assert sink.read_text().count("\n") == 100
