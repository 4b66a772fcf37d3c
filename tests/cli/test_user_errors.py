"""Bad input and bad luck end in one line on stderr (what, where, why) and exit status 2, never
a traceback or a hang (issue 13, items 9, 16, 17 and the config and template errors): bad
collector addresses, a collector whose disk is full, config files that are not UTF-8 or follow
no file, output templates with a stray brace."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from tests.cli.helpers import assert_one_error_line
from tests.harness import CollectorProcess, clean_env, reserve_port
from tests.harness.cli import run_wharf_text

# A run that breaks the contract hangs; this turns it into a failure (not a speed check).
HANG_S = 60


def wharf(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_wharf_text(list(map(str, args)), env or clean_env(), timeout=HANG_S)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("garbage", "'garbage' is not HOST:PORT"),
        ("127.0.0.1:²", "'127.0.0.1:²' is not HOST:PORT: port '²' is not a number"),
        ("127.0.0.1:99999", "'127.0.0.1:99999' is not HOST:PORT: port 99999 is past 65535"),
        ("127.0.0.1:", "'127.0.0.1:' is not HOST:PORT"),
    ],
)
def test_ship_to_a_bad_collector_address_is_one_line(
    tmp_path: Path, address: str, why: str
) -> None:
    sample = tmp_path / "a.log"
    sample.write_text("one line\n")
    done = wharf("ship", "--collector", address, "--timeout", "3", sample)
    assert_one_error_line(done, f"wharf: collector address {why}")
    env = clean_env(WHARF_COLLECTOR=address)  # the same from the environment
    assert_one_error_line(wharf("ship", "--timeout", "3", sample, env=env), why)


@pytest.mark.parametrize("flag", ["--listen", "--http"])
def test_collector_run_with_a_bad_port_is_one_line(tmp_path: Path, flag: str) -> None:
    done = wharf("collector", "run", "--data-dir", tmp_path / "data", flag, "127.0.0.1:²")
    assert_one_error_line(done, "'127.0.0.1:²' is not HOST:PORT")


def test_ship_gives_up_on_a_collector_that_keeps_refusing_its_batches(tmp_path: Path) -> None:
    """A collector that cannot write (its file size limit stands in for a full disk) refuses
    every batch as retriable. ``wharf ship --timeout 3`` tries again with growing pauses, then
    says why in one line and exits 2; the collector saw a few attempts, not a tight loop."""
    with CollectorProcess(tmp_path / "data").start() as col:
        first = tmp_path / "first.log"
        first.write_text("".join(f"first {i}\n" for i in range(100)))
        col.ship("t", "raw", first)  # the topic and its segment exist
        segments = list((tmp_path / "data" / "topics" / "t").glob("*/*.seg"))
        full = max(p.stat().st_size for p in segments)
        resource.prlimit(col.pid, resource.RLIMIT_FSIZE, (full, resource.RLIM_INFINITY))
        second = tmp_path / "second.log"
        second.write_text("".join(f"second {i}\n" for i in range(100)))
        done = col.wharf("ship", "-t", "t", "--timeout", "3", str(second))
        assert_one_error_line(done, "wharf: no collector accepted the batches for 3 s")
        assert col.address in done.stderr  # where, and the collector's reason after it
        nacks = _nacks(col.url)
        # Backoff: about 8 attempts in 3 s (0.05 s doubling, full jitter); a tight loop made
        # ~55. A slower machine only makes fewer.
        assert 1 <= nacks < 30, nacks
        resource.prlimit(col.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)


def _nacks(url: str) -> int:
    import urllib.request  # noqa: PLC0415 (only this test reads /metrics)

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return sum(
        int(float(row.rsplit(" ", 1)[1]))
        for row in text.splitlines()
        if row.startswith("wharf_ingest_nacks_total{")
    )


def test_ship_gives_up_when_no_collector_answers(tmp_path: Path) -> None:
    sample = tmp_path / "a.log"
    sample.write_text("one line\n")
    port = reserve_port()  # nobody listens there
    try:
        done = wharf("ship", "--collector", f"127.0.0.1:{port.port}", "--timeout", "2", sample)
    finally:
        port.release()
    assert_one_error_line(done, "no collector accepted the batches for 2 s")
    assert f"127.0.0.1:{port.port}" in done.stderr


NOT_UTF8 = b'state_dir = "/tmp/caf\xe9"\n'


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        (["shipper", "run", "--config"], "{path}:1: not UTF-8 text (byte 0xe9)"),
        (["shipper", "status", "--config"], "{path}:1: not UTF-8 text (byte 0xe9)"),
        (["collector", "run", "--config"], "{path}:1: not UTF-8 text (byte 0xe9)"),
    ],
)
def test_a_config_that_is_not_utf8_is_one_line(
    tmp_path: Path, command: list[str], fragment: str
) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(NOT_UTF8)
    assert_one_error_line(wharf(*command, path), fragment.format(path=path))


NO_INPUTS = 'collectors = ["127.0.0.1:7070"]\nstate_dir = "{state}"\n'


def test_a_shipper_config_without_inputs_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "shipper.toml"
    path.write_text(NO_INPUTS.format(state=tmp_path / "state"))
    done = wharf("shipper", "run", "--config", path)
    assert_one_error_line(done, f"{path}: inputs: no [[inputs]] table")
    checked = wharf("config", "check", path)
    assert (checked.returncode, checked.stderr) == (2, "")
    assert checked.stdout == (
        f"{path}:1: inputs: no [[inputs]] table: the shipper would follow no file (add one "
        "with paths and topic)\n"
    )
    path.write_text(NO_INPUTS.format(state=tmp_path / "state") + "inputs = []\n")
    assert_one_error_line(wharf("shipper", "run", "--config", path), "no [[inputs]] table")
    # An input dropped for its own error is not reported a second time as a missing input.
    path.write_text(
        NO_INPUTS.format(state=tmp_path / "state") + '[[inputs]]\npaths = "/a"\ntopic = "t"\n'
    )
    checked = wharf("config", "check", path)
    assert checked.stdout == f"{path}:4: inputs[0].paths: Expected `array`, got `str`\n"


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{nosuchfield", "a '{' that is never closed at character 1"),
        ("{host} {line", "a '{' that is never closed at character 8"),
        ("{ts} }", "a '}' that closes nothing (write }} for a brace) at character 6"),
        ("{no such field}", "{no such field} is not a field name"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["grep", "-t", "web", "x", "-o"],
        ["tail", "-t", "web", "--no-follow", "-o"],
        ["replay", "-t", "web", "--from-offset", "0", "-o"],
    ],
)
def test_a_bad_output_template_is_one_line_naming_the_problem(
    command: list[str], template: str, why: str
) -> None:
    port = reserve_port()  # no collector: the template is refused before any request
    try:
        env = clean_env(
            WHARF_COLLECTOR=f"127.0.0.1:{port.port}", WHARF_HTTP=f"http://127.0.0.1:{port.port}"
        )
        done = wharf(*command, template, env=env)
    finally:
        port.release()
    assert_one_error_line(done, f"wharf: output template {template!r}: {why}")


def test_a_good_template_with_doubled_braces_still_works(tmp_path: Path) -> None:
    with CollectorProcess(tmp_path / "data").start() as col:
        sample = tmp_path / "a.log"
        sample.write_text("hello\n")
        col.ship("t", "raw", sample)
        done = col.wharf("tail", "-t", "t", "--no-follow", "-o", "{{{line}}} {nosuch}.")
        assert (done.returncode, done.stdout) == (0, "{hello} .\n"), done.stderr


def test_a_retry_after_header_with_unicode_digits_is_ignored_not_a_crash() -> None:
    """A sink answering ``Retry-After: ²`` (``"²".isdigit()`` is true, ``float("²")`` raises)
    gets the ordinary backoff, not a traceback in ``wharf replay``."""
    from cli.replay._pacing import parse_retry_after  # noqa: PLC0415 (one pure helper, in process)

    assert parse_retry_after("²") is None and parse_retry_after("7") == 7.0
