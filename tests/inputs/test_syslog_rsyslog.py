"""Debian's rsyslog forwarding to the syslog input, as operators run it: ``rsyslogd -n`` as a
child with its own configuration and work directory (no system inputs, nothing privileged),
``imfile`` tailing files, ``omfwd`` to our TCP input with RFC 6587 octet counting and the
RFC 5424 template (``RSYSLOG_SyslogProtocol23Format``), and to our TLS input with
``rsyslog-gnutls`` and its defaults (LF framing, the traditional format: no year, no zone,
the tag without a colon). A Java stack trace read as one multi-line message (imfile escapes its
newlines as ``#012``) and a message relayed through rsyslog's ``imtcp`` with a tab (escaped as
``#011``) come back whole. Every line is stored exactly once in each topic.
"""

from __future__ import annotations

import glob
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.collector.certs import make_certs
from tests.harness import CollectorProcess, wait_for
from tests.harness.children import track, untrack
from tests.inputs.conftest import InputsCollector
from tests.inputs.test_syslog_input import TIMEOUT_S, counts, need, stored, wait_counts

HOST = "rs-host"  # rsyslog's localHostname: the HOSTNAME of what it reads from files
LINES = 300  # per half: written before rsyslog starts, then appended while it tails
# imfile's readMode=2 sends a message once the next one starts: the file's last line waits.
HELD = "the last line, which imfile holds"

RSYSLOG_CONF = """\
global(workDirectory="{work}" localHostname="{host}" defaultNetstreamDriverCAFile="{ca}")
module(load="imfile" mode="inotify")
module(load="imtcp")
input(type="imfile" file="{app}" tag="webapp" ruleset="fwd")
input(type="imfile" file="{trace}" tag="java:" readMode="2" ruleset="fwd")
input(type="imtcp" port="0" listenPortFileName="{portfile}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{tls}" protocol="tcp"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="127.0.0.1")
}}
"""


class Rsyslog:
    """``rsyslogd -n -f CONF -i PIDFILE`` in ``directory`` (its output in ``rsyslogd.log``)."""

    def __init__(self, directory: Path, conf: str) -> None:
        self.directory = directory
        (directory / "work").mkdir(parents=True, exist_ok=True)
        (directory / "rsyslog.conf").write_text(conf)
        self.log = directory / "rsyslogd.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [need("rsyslogd"), "-n", "-f", str(directory / "rsyslog.conf"),
                 "-i", str(directory / "rsyslogd.pid")],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        track(self)

    def stop(self) -> int:
        """SIGTERM (rsyslog sends what it holds, then exits) and wait."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(TIMEOUT_S)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        untrack(self)


def need_gnutls() -> None:
    if not glob.glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"):
        need("rsyslog-gnutls's lmnsd_gtls.so")  # skips, or fails in CI


def relay_through_imtcp(port_file: Path, message: bytes) -> None:
    port = wait_for(
        lambda: port_file.exists() and port_file.read_text().strip(),
        TIMEOUT_S,
        "rsyslog's imtcp port",
    )
    with socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(message)


def messages(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(host, source, message) of each record but imfile's held last line (rsyslog's msg keeps
    the space after "tag:")."""
    out = [(r["host"], r["source"], r["fields"]["message"].strip()) for r in records]
    return sorted(m for m in out if m[2] != HELD)


def test_rsyslog_tcp_octet_counted_5424_and_tls(
    inputs_collector: InputsCollector, tmp_path: Path
) -> None:
    need("rsyslogd")
    need_gnutls()
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    proc: CollectorProcess = inputs_collector(
        [
            {"type": "syslog", "name": "tcp", "protocol": "tcp", "listen": "127.0.0.1:0",
             "topic": "rs-tcp"},
            {"type": "syslog", "name": "tls", "protocol": "tls", "listen": "127.0.0.1:0",
             "topic": "rs-tls"},
        ],
        f'[tls]\ncert = "{certs["cert"]}"\nkey = "{certs["key"]}"\n',
        ca=certs["ca"],
    )  # fmt: skip
    d = tmp_path / "rsyslog"
    d.mkdir()
    app, trace, port_file = d / "app.log", d / "trace.log", d / "imtcp.port"
    first = [f"web line {i} caf\u00e9 [{i % 7}]" for i in range(LINES)]
    app.write_text("".join(f"{line}\n" for line in first))
    trace.write_text("")
    rsyslog = Rsyslog(
        d,
        RSYSLOG_CONF.format(
            work=d / "work", host=HOST, ca=certs["ca"], app=app, trace=trace,
            portfile=port_file, tcp=proc.input_ports["tcp"], tls=proc.input_ports["tls"],
        ),
    )  # fmt: skip
    try:
        wait_for(lambda: len(stored(proc, "rs-tcp")) >= LINES, TIMEOUT_S, "the first lines")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; rsyslogd said:\n{rsyslog.log.read_text()[-4000:]}") from None
    second = [f"web line {i} appended" for i in range(LINES, 2 * LINES)]
    with app.open("a") as f:
        f.write("".join(f"{line}\n" for line in second))
    stack = "Exception in thread main\n\tat a.B.c(B.java:1)\n\tat d.E.f(E.java:2)"
    with trace.open("a") as f:  # readMode=2 sends a message when the next one starts: the
        f.write(f"{stack}\nafter the trace\n{HELD}\n")  # last is held, even at shutdown
    relay_through_imtcp(port_file, b"<13>Dec  5 09:00:00 relayhost tabber: a\tb\n")

    want = sorted(
        [(HOST, "webapp", line) for line in first + second]
        + [(HOST, "java", stack), (HOST, "java", "after the trace")]
        + [("relayhost", "tabber", "a\tb")]
    )
    try:
        for topic in ("rs-tcp", "rs-tls"):
            wait_for(
                lambda t=topic: len(stored(proc, t)) >= len(want), TIMEOUT_S, f"all in {topic}"
            )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; rsyslogd said:\n{rsyslog.log.read_text()[-4000:]}") from None
    assert rsyslog.stop() == 0
    for name in ("tcp", "tls"):  # rsyslog's connections gone, everything received stored
        wait_counts(
            proc,
            name,
            lambda c: c["connections"] == 0 and c["stored"] == c["received"] >= len(want),
            f"{name}: every record stored",
        )
    tcp, tls = stored(proc, "rs-tcp"), stored(proc, "rs-tls")
    assert messages(tcp) == want  # each line exactly once
    assert messages(tls) == want
    for r in tcp:  # RFC 5424: rsyslog's template, with its microsecond timestamp
        assert re.match(r"<[0-9]{1,3}>1 [0-9-]{10}T[0-9:]{8}(\.[0-9]{6})?[+-][0-9:]{5} ", r["line"])
        assert r["fields"]["version"] == 1 and r["fields"]["hostname"] == r["host"]
        assert r["fields"]["appname"] == r["source"]
    for r in tls:  # the traditional format: "<PRI>Mmm dd hh:mm:ss host tag msg"
        assert "version" not in r["fields"] and r["fields"]["appname"] == r["source"]
    for name in ("tcp", "tls"):
        c = counts(proc, name)
        assert (c["malformed"], c["dropped"], c["refused"]) == (0, 0, 0), c
    assert "Traceback" not in proc.log.read_text()
