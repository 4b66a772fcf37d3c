"""Every command has ``--help`` with examples, shell completion works (typer's), and no
traceback ever reaches a user."""

from __future__ import annotations

import subprocess

import pytest

from tests.cli.helpers import assert_one_error_line
from tests.harness import WHARF, CollectorProcess, clean_env

COMMANDS = [
    ["grep"], ["tail"], ["status"], ["topics", "list"], ["topics", "describe"],
    ["topics", "create"], ["topics", "delete"],
]  # fmt: skip


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WHARF, *args], capture_output=True, text=True, env=clean_env(COLUMNS="100", **env),
        timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Examples" in done.stdout and f"wharf {' '.join(command)}" in done.stdout


def test_top_level_help_lists_status() -> None:
    assert " status " in run("--help").stdout


def complete(words: str, cword: int, **env: str) -> list[str]:
    done = run(_WHARF_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword), **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_shell_completion() -> None:
    assert "grep" in complete("wharf gr", 1) and "status" in complete("wharf st", 1)
    assert set(complete("wharf topics ", 2)) >= {"list", "describe", "create", "delete"}
    assert "--after-context" in complete("wharf grep --after", 2)
    # the script `--show-completion` prints for the detected shell (detection needs a shell
    # among the ancestors, which a test run need not have: ask for bash by name)
    script = run(_WHARF_COMPLETE="source_bash")
    assert script.returncode == 0 and "_WHARF_COMPLETE=complete_bash" in script.stdout


def test_topic_names_complete_from_the_collector(shipped: CollectorProcess) -> None:
    env = {"WHARF_HTTP": shipped.url}
    assert complete("wharf grep -t ", 3, **env) == sorted(complete("wharf grep -t ", 3, **env))
    assert set(complete("wharf grep -t ", 3, **env)) >= {"auth", "kafka", "web"}
    assert complete("wharf tail -t ka", 3, **env) == ["kafka"]
    assert complete("wharf topics describe w", 3, **env) == ["web"]
    # an unreachable collector completes nothing, at once, and says nothing
    assert complete("wharf grep -t ", 3, WHARF_HTTP="http://127.0.0.1:9") == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["grep", "-t", "web", "(kib"], "invalid regular expression '(kib': missing ): (kib"),
        (["grep", "-i", "-t", "web", "a{1001}"], "invalid repetition size: {1001}"),
        (["grep", "-t", "web", "x", "--since", "banana"], "invalid duration 'banana'"),
        (["grep", "-t", "web", "x", "--from", "25:00"], "invalid time '25:00'"),
        (["grep", "-t", "web", "x", "--from", "2015-05-18", "--to", "2015-05-17"],
         "empty time range"),
        (["grep", "-t", "web", "x", "--since", "1h", "--from", "2h"], "not both"),
        (["grep", "-t", "web", "x", "-c", "-l"], "give -c or -l"),
        (["grep", "-t", "web", "x", "-C", "2", "--newest-first"], "oldest first"),
        (["grep", "-t", "web", "x", "-A", "5000"], "exceeds 1000"),
        (["grep", "-t", "nope", "x"], "no topic 'nope'"),
        (["grep", "-t", "web", "x", "--where", "status>="], "at column 9"),
        (["tail", "-t", "web", "-n", "-1"], "-n must be 0 or more"),
        (["topics", "create", "Bad/Name"], "invalid topic name"),
        (["status", "-o", "yaml"], "unknown output format"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_exit_2(
    shipped: CollectorProcess, args: list[str], fragment: str
) -> None:
    done = shipped.wharf(*args)
    assert_one_error_line(done, fragment)
    assert "(?m" not in done.stderr  # our internal regex flags never leak into a message


def test_re2_does_not_log_to_stderr(shipped: CollectorProcess) -> None:
    done = shipped.wharf("grep", "-t", "web", "(kib")
    assert "re2.cc" not in done.stderr and "absl" not in done.stderr
