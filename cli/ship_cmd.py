"""``wharf ship``: one file or stdin to a collector, exit 0 only when every record is acked."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from cli._common import fail, user_errors

DEFAULT_COLLECTOR = "127.0.0.1:7070"


def collector_addresses(flag: str | None) -> list[str]:
    """``--collector``, then ``WHARF_COLLECTOR``, then the default (comma lists allowed)."""
    raw = flag or os.environ.get("WHARF_COLLECTOR") or DEFAULT_COLLECTOR
    return [a.strip() for a in raw.split(",") if a.strip()]


def ship(
    file: Annotated[str, typer.Argument(help="File to send, or - for stdin.")] = "-",
    collector: Annotated[
        str | None,
        typer.Option(
            "--collector",
            help="HOST:PORT (or a comma list for failover); default "
            "$WHARF_COLLECTOR, then 127.0.0.1:7070.",
        ),
    ] = None,
    topic: Annotated[str, typer.Option("--topic", "-t", help="Topic to write to.")] = "logs",
    parser: Annotated[str, typer.Option("--parser", "-p", help="Parser for each line.")] = "raw",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Give up (exit 2) when no batch has been acknowledged for this many seconds: "
            "no collector answers, or it keeps refusing the batches (a full disk).",
        ),
    ] = 60.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
) -> None:
    """Send a file (or stdin) to a collector and exit 0 only when every record is acknowledged.

    A batch resent after a lost connection is not stored twice. A collector that refuses the
    batches for now (a full disk) is retried with growing pauses until --timeout passes
    without an acknowledgement; then one line says why and the exit status is 2.
    Token: $WHARF_TOKEN.

    Examples:

      [bold]wharf ship -t nginx -p clf /var/log/nginx/access.log[/bold]

      [bold]journalctl -o cat | wharf ship -t journal -[/bold]
    """
    from parsers import get_parser  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from shipper.oneshot import file_identity  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from shipper.oneshot import ship as ship_stream  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from shipper.transport import Producer  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from wharf.address import split_host_port  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))
    from wharf.topics import validate_topic  # noqa: PLC0415 (lazy: each command imports only what it runs (CLI start-up))

    # Reconnect attempts are the transport's business; the user gets one line at the end.
    logging.getLogger("shipper").setLevel(logging.ERROR)
    with user_errors():
        validate_topic(topic)
        addresses = collector_addresses(collector)
        for address in addresses:
            split_host_port(address, "collector address")
        if not addresses:
            fail("no collector address: give --collector HOST:PORT")
        if not timeout > 0:
            fail(f"--timeout must be a positive number of seconds, got {timeout:g}")
        try:
            the_parser = get_parser(parser)
        except ValueError as exc:
            fail(str(exc))
        stream: BinaryIO = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
        source = "-" if file == "-" else str(Path(file).resolve())

        async def main() -> None:
            producer = Producer(
                addresses,
                producer_id=uuid.uuid4().bytes,
                token=os.environ.get("WHARF_TOKEN", ""),
                deadline_s=timeout,
                client_name="wharf-ship/0.1",
            )
            try:
                stats = await ship_stream(
                    stream,
                    producer=producer,
                    topic=topic,
                    parser=the_parser,
                    source=source,
                    file_id=file_identity(stream, source),
                )
            finally:
                await producer.close()
                stream.close()
            if not quiet:
                print(
                    f"wharf: shipped {stats.records} records in {stats.batches} batches to "
                    f"topic {topic!r}"
                    + (f", {stats.parse_errors} lines did not parse" if stats.parse_errors else "")
                    + (f", {stats.truncated_lines} truncated" if stats.truncated_lines else ""),
                    file=sys.stderr,
                )

        asyncio.run(main())
