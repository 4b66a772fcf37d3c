"""The options of ``wharf replay``, checked together before anything is read, and the command
line that resumes an interrupted replay. Times and durations arrive already parsed (the CLI's
time parser knows the user's zone); everything else is checked here."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cli.render import parse_format, rfc3339_ns
from cli.replay._pacing import parse_rate, parse_speed
from cli.replay._positions import OffsetSpec, offset_args, parse_offsets
from cli.replay._sinkurl import SinkSpec, parse_sink
from wharf.errors import InvalidArgument
from wharf.topics import validate_topic

DEFAULT_BATCH: Final = 500
# A delivery of more records than this is a retry of more than anyone wants to resend.
MAX_BATCH: Final = 100_000
DEFAULT_MAX_GAP: Final = "60s"
DEFAULT_RETRY_FOR: Final = "5m"
# Header names whose values are not repeated in a printed resume command.
_SECRET_HEADERS: Final = ("authorization", "cookie", "token", "key", "secret", "password")


@dataclass(frozen=True)
class ReplayOptions:
    """Everything ``wharf replay`` was asked, checked. ``*_text`` keep what the user typed, for
    the resume command."""

    topic: str
    partitions: tuple[int, ...]
    from_offsets: OffsetSpec
    from_ts: int | None
    group: str | None
    to_offsets: OffsetSpec
    to_ts: int | None
    follow: bool
    rate: float | None
    rate_text: str | None
    speed: float | None
    speed_text: str | None
    max_gap_s: float
    max_gap_text: str
    sink: SinkSpec
    output: str
    batch: int
    headers: tuple[tuple[str, str], ...]
    retry_for_s: float
    retry_for_text: str
    http: str | None = None

    @classmethod
    def build(
        cls,
        *,
        topic: str,
        partitions: Sequence[int] = (),
        from_offset: Sequence[str] = (),
        from_ts: int | None = None,
        from_time_text: str | None = None,
        group: str | None = None,
        to_offset: Sequence[str] = (),
        to_ts: int | None = None,
        to_time_text: str | None = None,
        follow: bool = False,
        rate: str | None = None,
        speed: str | None = None,
        max_gap_s: float = 60.0,
        max_gap_text: str = DEFAULT_MAX_GAP,
        sink: str = "stdout",
        output: str = "json",
        batch: int = DEFAULT_BATCH,
        sink_headers: Sequence[str] = (),
        retry_for_s: float = 300.0,
        retry_for_text: str = DEFAULT_RETRY_FOR,
        http: str | None = None,
    ) -> ReplayOptions:
        """Check the options together; ``InvalidArgument`` names the first problem."""
        validate_topic(topic)
        starts = [
            name
            for name, given in (
                ("--from-offset", bool(from_offset)),
                ("--from-time", from_ts is not None),
                ("--group", group is not None),
            )
            if given
        ]
        if len(starts) > 1:
            raise InvalidArgument(
                f"give one of --from-offset, --from-time, --group, not {' and '.join(starts)} "
                "(to move a group: wharf groups reset G -t TOPIC --to-time TS)"
            )
        ends = [
            name
            for name, given in (
                ("--to-offset", bool(to_offset)),
                ("--to-time", to_ts is not None),
                ("--follow", follow),
            )
            if given
        ]
        if len(ends) > 1:
            raise InvalidArgument(
                f"give one of --to-offset, --to-time, --follow, not {' and '.join(ends)}"
            )
        if from_ts is not None and to_ts is not None and from_ts >= to_ts:
            raise InvalidArgument(
                f"empty time range: --from-time {from_time_text!r} is not before "
                f"--to-time {to_time_text!r}"
            )
        if rate is not None and speed is not None:
            raise InvalidArgument("give --rate or --speed, not both")
        if any(p < 0 for p in partitions):
            raise InvalidArgument("--partition must be 0 or more")
        if not 1 <= batch <= MAX_BATCH:
            raise InvalidArgument(f"--batch must be between 1 and {MAX_BATCH}, got {batch}")
        spec = parse_sink(sink)
        fmt = parse_format(output)
        if spec.kind in ("http", "wharf") and fmt != "json":
            raise InvalidArgument(f"the {spec.kind} sink takes records as JSON; drop -o {fmt}")
        headers = tuple(_header(h) for h in sink_headers)
        if headers and spec.kind != "http":
            raise InvalidArgument("--sink-header is for http(s) sinks only")
        return cls(
            topic=topic,
            partitions=tuple(sorted(set(partitions))),
            from_offsets=parse_offsets(from_offset, "--from-offset"),
            from_ts=from_ts,
            group=group,
            to_offsets=parse_offsets(to_offset, "--to-offset"),
            to_ts=to_ts,
            follow=follow,
            rate=parse_rate(rate) if rate is not None else None,
            rate_text=rate,
            speed=parse_speed(speed) if speed is not None else None,
            speed_text=speed,
            max_gap_s=max_gap_s,
            max_gap_text=max_gap_text,
            sink=spec,
            output=fmt,
            batch=batch,
            headers=headers,
            retry_for_s=retry_for_s,
            retry_for_text=retry_for_text,
            http=http,
        )

    def resume_command(self, positions: Mapping[int, int], stops: Mapping[int, int | None]) -> str:
        """The command that continues this replay: with ``--group`` the group knows where;
        otherwise from ``positions`` (the next offset per partition the sink has not
        accepted) to this run's ``stops``."""
        args = ["wharf", "replay", "-t", self.topic]
        if self.http:
            args += ["--http", self.http]
        for p in self.partitions:
            args += ["--partition", str(p)]
        if self.group is not None:
            args += ["--group", self.group]
        else:
            args += offset_args("--from-offset", positions)
        if self.follow:
            args.append("--follow")
        elif self.to_ts is not None:
            args += ["--to-time", rfc3339_ns(self.to_ts)]
        elif self.group is None or self.to_offsets:
            # Without a group the resumed range is pinned to this run's; a group catches up
            # to the end it finds, unless an end was asked for.
            args += offset_args("--to-offset", {p: s or 0 for p, s in stops.items()})
        if self.rate_text is not None:
            args += ["--rate", self.rate_text]
        if self.speed_text is not None:
            args += ["--speed", self.speed_text]
            if self.max_gap_text != DEFAULT_MAX_GAP:
                args += ["--max-gap", self.max_gap_text]
        args += ["--sink", self.sink.text]
        if self.output != "json":
            args += ["-o", self.output]
        if self.batch != DEFAULT_BATCH:
            args += ["--batch", str(self.batch)]
        for name, value in self.headers:
            secret = any(s in name.lower() for s in _SECRET_HEADERS)
            args += ["--sink-header", f"{name}: {'...' if secret else value}"]
        if self.retry_for_text != DEFAULT_RETRY_FOR:
            args += ["--retry-for", self.retry_for_text]
        return shlex.join(args)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c.isspace() for c in name):
        raise InvalidArgument(f"invalid --sink-header {text!r}: write 'Name: value'")
    if "\r" in value or "\n" in value:
        raise InvalidArgument(f"invalid --sink-header {name!r}: the value holds a line break")
    return name, value.strip()
