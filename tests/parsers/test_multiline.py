"""Multiline grouping against three peers' expectations, and its determinism.

Vectors (``../shared/data/vectors/multiline/``):

- ``detect_exceptions.jsonl`` and ``samples/*.txt``: GoogleCloudPlatform/
  fluent-plugin-detect-exceptions @ 09e07e7f (``test/plugin/test_exception_detector.rb``;
  Apache-2.0): single traces in Java, JS, C#, Python, PHP, Go, Ruby, Dart, alone and between
  other lines; mixed streams (``test_buffer``); the ``max_lines``/``max_bytes`` limits.
- ``fluentbit_multiline.jsonl``: fluent/fluent-bit @ d55459d4 (``tests/internal/multiline.c``;
  Apache-2.0): docker/CRI fragments, the java/python/go/ruby parsers, custom regex rules,
  ``endswith``.
- ``kafka_*.groups.jsonl``: the grouping of ``../shared/data/logs/kafka_*.log`` (elastic/examples
  @ 6d86454e, Apache-2.0) under that repository's own Filebeat rule: ``^\\[``, negate, after.

The peers' lines and records keep their trailing newline; Wharf's lines never carry one (the
line splitter removes it) and an event is its lines joined with ``\\n``. So every input line
loses one trailing newline, and so does every expected group.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.cri import CriParser
from parsers.docker import DockerParser
from parsers.lines import LineSplitter
from parsers.multiline import Multiline, MultilineConfig
from parsers.partial import PartialMerger
from tests.parsers._vectors import LOGS_DIR, VECTORS_DIR, params


def _chomp(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def _group(config: MultilineConfig, lines: list[str]) -> list[str]:
    grouper = Multiline(config)
    out: list[str] = []
    for line in lines:
        out += grouper.feed(_chomp(line), 0)
    return out + grouper.flush()


# --- fluent-plugin-detect-exceptions ----------------------------------------------------------


def _detect_exceptions_samples_match(case: dict[str, Any]) -> None:
    """The case's lines are its sample file's (the vectors reference ``samples/*.txt``)."""
    sample = VECTORS_DIR / "multiline" / case["sample_file"]
    assert sample.read_text(encoding="utf-8") == "".join(case["input_lines"])


@pytest.mark.parametrize("case", params("multiline/detect_exceptions"))
def test_detect_exceptions(case: dict[str, Any]) -> None:
    kind = case["kind"]
    expected = [_chomp(g) for g in case["expected_groups"]]
    if kind == "single_trace":
        _detect_exceptions_samples_match(case)
        # The language's own machine, and all languages at once, find the one trace.
        for preset in (case["language"], "all"):
            config = MultilineConfig(preset=preset)
            assert _group(config, case["input_lines"]) == expected
        stream = case["stream_test"]
        in_stream = _group(MultilineConfig(preset=case["language"]), stream["input_lines"])
        assert in_stream == [_chomp(g) for g in stream["expected_groups"]]
    elif kind == "no_trace":
        _detect_exceptions_samples_match(case)
        assert _group(MultilineConfig(preset="all"), case["input_lines"]) == expected
    elif kind == "stream":
        (language,) = case["languages_enabled"]
        assert case["flush_after_each_message"]
        grouper = Multiline(MultilineConfig(preset=language))
        got: list[str] = []
        for message in case["input_messages"]:
            for line in message.splitlines():
                got += grouper.feed(line, 0)
            got += grouper.flush()
        assert got == expected
    elif kind == "limit":
        (language,) = case["languages_enabled"]
        config = MultilineConfig(preset=language, **case["options"])
        assert _group(config, case["input_lines"]) == expected
    else:
        raise AssertionError(f"vector kind not mapped: {kind}")


# --- Fluent Bit ---------------------------------------------------------------------------------


def _fluent_bit_config(spec: Any) -> MultilineConfig:
    """Fluent Bit's multiline parser definition as ours."""
    if isinstance(spec, str):
        return MultilineConfig(preset=spec)
    if spec["type"] == "regex":
        # Fluent Bit writes each regex between slashes.
        rules = tuple((states, regex[1:-1], to) for states, regex, to in spec["rules"])
        assert all(regex.startswith("/") and regex.endswith("/") for _, regex, _ in spec["rules"])
        return MultilineConfig(rules=rules, flush_timeout_ns=spec["flush_ms"] * 1_000_000)
    if spec["type"] == "endswith":
        # endswith flushes after a line that matches (negate: that does not match) match_str:
        # Filebeat's match "before", with the line-ending pattern negated the other way round.
        return MultilineConfig(
            pattern=re.escape(spec["match_str"]) + r"\Z",
            negate=not spec["negate"],
            match="before",
            flush_timeout_ns=spec["flush_ms"] * 1_000_000,
        )
    raise AssertionError(f"fluent-bit parser not mapped: {spec}")


@pytest.mark.parametrize("case", params("multiline/fluentbit_multiline"))
def test_fluent_bit(case: dict[str, Any]) -> None:
    """Fluent Bit's pipeline: the container parsers (each with its own fragment state) try each
    record in order; a record none of them reads breaks every pending fragment (Fluent Bit's
    flb_ml_append_text flushes all, then passes the record on); then the multiline parser."""
    assert case["record_key"] == "log"
    containers: dict[str, CriParser | DockerParser] = {"cri": CriParser(), "docker": DockerParser()}
    chain = [p for p in case["parser_config"] if isinstance(p, str) and p in containers]
    others = [p for p in case["parser_config"] if p not in chain]
    assert len(others) <= 1
    grouper = Multiline(_fluent_bit_config(others[0])) if others else None
    mergers = {name: PartialMerger() for name in chain}
    out: list[str] = []

    def emit(messages: list[str]) -> None:
        for message in messages:
            out.extend(grouper.feed(message, 0) if grouper else [message])

    for record in case["input_records"]:
        line = _chomp(record)
        for name in chain:
            parsed = containers[name].parse(line)
            if parsed.error is None:
                emit([e.parsed.fields["message"] for e in mergers[name].feed(parsed)])
                break
        else:
            for merger in mergers.values():
                emit([e.parsed.fields["message"] for e in merger.flush()])
            emit([line])
    for merger in mergers.values():
        emit([e.parsed.fields["message"] for e in merger.flush()])
    if grouper:
        out += grouper.flush()
    assert out == [_chomp(r) for r in case["expected_records"]]


# --- Kafka logs, Filebeat rule ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["kafka_controller", "kafka_state_change"])
def test_kafka_groups(name: str) -> None:
    """Every event starts where the groups file says, has its number of lines, and none is
    missing or extra."""
    data = (LOGS_DIR / f"{name}.log").read_bytes()
    splitter = LineSplitter()
    lines = splitter.feed(data) + splitter.flush()
    grouper = Multiline(MultilineConfig(pattern=r"^\[", negate=True, match="after"))
    events: list[str] = []
    for line in lines:
        events += grouper.feed(line.text, 0)
    events += grouper.flush()
    groups_file = VECTORS_DIR / "multiline" / f"{name}.groups.jsonl"
    groups = [json.loads(g) for g in groups_file.read_text(encoding="utf-8").splitlines()]
    assert len(events) == len(groups)
    start = 1
    for event, group in zip(events, groups, strict=True):
        assert group["start_line"] == start
        n = event.count("\n") + 1
        assert n == group["n_lines"]
        assert event.startswith(group["first"])
        assert event == "\n".join(line.text for line in lines[start - 1 : start - 1 + n])
        start += n
    assert start - 1 == len(lines)


# --- modes, limits, timeouts --------------------------------------------------------------------


def _feed_all(grouper: Multiline, lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += grouper.feed(line, 0)
    return out


def test_filebeat_modes() -> None:
    lines = ["a", " 1", " 2", "b", "c", " 3"]
    after = Multiline(MultilineConfig(pattern=r"^\s", match="after"))
    assert _feed_all(after, lines) + after.flush() == ["a\n 1\n 2", "b", "c\n 3"]
    # Lines ending in "\" continue onto the next one.
    cont = ["x \\", "y \\", "z", "w"]
    before = Multiline(MultilineConfig(pattern=r"\\$", match="before"))
    assert _feed_all(before, cont) + before.flush() == ["x \\\ny \\\nz", "w"]
    negated = Multiline(MultilineConfig(pattern=r"^\d", negate=True, match="after"))
    assert _feed_all(negated, ["1 a", "b", "2 c"]) + negated.flush() == ["1 a\nb", "2 c"]


def test_start_and_continuation() -> None:
    both = Multiline(MultilineConfig(start=r"^START", continuation=r"^\+"))
    lines = ["START 1", "+a", "other", "+orphan", "START 2", "+b"]
    assert _feed_all(both, lines) + both.flush() == [
        "START 1\n+a",
        "other",
        "+orphan",
        "START 2\n+b",
    ]
    start_only = Multiline(MultilineConfig(start=r"^\d"))
    assert _feed_all(start_only, ["x", "1", "a", "2"]) + start_only.flush() == ["x", "1\na", "2"]
    cont_only = Multiline(MultilineConfig(continuation=r"^\s"))
    assert _feed_all(cont_only, ["a", " b", "c"]) + cont_only.flush() == ["a\n b", "c"]


def test_limits_split_and_reset() -> None:
    grouper = Multiline(MultilineConfig(pattern=r"^\s", max_lines=2))
    assert _feed_all(grouper, ["a", " 1", " 2", " 3"]) + grouper.flush() == ["a\n 1", " 2\n 3"]
    # max_bytes counts UTF-8 bytes plus one newline per line: "é" is 2 + 1, " é" 3 + 1.
    grouper = Multiline(MultilineConfig(pattern=r"^\s", max_bytes=7))
    assert _feed_all(grouper, ["é", " é", " é"]) + grouper.flush() == ["é\n é", " é"]


def test_timeouts_and_pending() -> None:
    grouper = Multiline(MultilineConfig(preset="java", flush_timeout_ns=100))
    assert grouper.feed("java.lang.Error: boom", 1_000) == []
    assert grouper.feed("\tat a.b(C.java:1)", 1_050) == []
    assert (grouper.pending_lines, grouper.pending_since) == (2, 1_000)
    assert grouper.pending_bytes == len("java.lang.Error: boom\n\tat a.b(C.java:1)\n")
    assert grouper.flush_due(1_149) == []
    assert grouper.flush_due(1_150) == ["java.lang.Error: boom\n\tat a.b(C.java:1)"]
    assert (grouper.pending_lines, grouper.pending_since) == (0, None)
    # The machine was reset: a frame alone is not inside a trace any more.
    assert grouper.feed("\tat a.b(C.java:2)", 2_000) == ["\tat a.b(C.java:2)"]
    assert grouper.flush() == [] and grouper.flush_due(10**12) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "set exactly one of"),
        ({"preset": "java", "pattern": "x"}, "set exactly one of"),
        ({"preset": "cobol"}, "unknown preset 'cobol'"),
        ({"pattern": "("}, r"pattern '\(' does not compile"),
        ({"start": "[", "continuation": "x"}, r"rule pattern '\[' does not compile"),
        ({"rules": (("cont", "x", "cont"),)}, "no rule leaves 'start_state'"),
        ({"pattern": "x", "max_lines": 0}, "max_lines and max_bytes must be at least 1"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Multiline(MultilineConfig(**kwargs))


# --- determinism and the partition property ------------------------------------------------------

_LINE = st.sampled_from(
    [
        "[2016-12-19 18:01:53,612] ERROR x",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.A.b(A.java:1)",
        "Caused by: java.io.IOException: x",
        "\t... 3 more",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "    f()",
        "ValueError: bad",
        "panic: oops",
        "",
        "goroutine 1 [running]:",
        "main.main()",
        "\t/x.go:3 +0x1",
        "plain text",
        "é",
    ]
    # No '\r' in generated text: a line's trailing '\r' belongs to its '\r\n' terminator.
) | st.text(max_size=20).map(lambda s: s.replace("\n", "").replace("\r", ""))

_CONFIGS = st.sampled_from(
    [
        MultilineConfig(preset="all", max_lines=7, max_bytes=300),
        MultilineConfig(preset="java"),
        MultilineConfig(preset="python"),
        MultilineConfig(preset="go"),
        MultilineConfig(pattern=r"^\[", negate=True, match="after", max_lines=5),
        MultilineConfig(pattern=r"^\s", match="before"),
        MultilineConfig(start=r"^\[", continuation=r"^\s"),
    ]
)


@settings(max_examples=300)
@given(
    lines=st.lists(_LINE, max_size=40),
    config=_CONFIGS,
    polls=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_deterministic_and_partitioning(
    lines: list[str], config: MultilineConfig, polls: list[bool]
) -> None:
    """The same lines give the same events whether or not ``flush_due`` is polled between them
    (without a timeout passing), and the events are exactly the lines, in order."""
    plain = Multiline(config)
    polled = Multiline(config)
    a: list[str] = []
    b: list[str] = []
    for i, line in enumerate(lines):
        a += plain.feed(line, i)
        if polls[i]:
            b += polled.flush_due(i)
        b += polled.feed(line, i)
        assert plain.pending_lines == polled.pending_lines
        emitted_lines = sum(e.count("\n") + 1 for e in a)
        assert emitted_lines + plain.pending_lines == i + 1
    a += plain.flush()
    b += polled.flush()
    assert a == b
    assert "\n".join(a) == "\n".join(lines)
    assert sum(e.count("\n") + 1 for e in a) == len(lines)


@settings(max_examples=200)
@given(
    lines=st.lists(_LINE, max_size=30),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    crlf=st.booleans(),
)
def test_any_chunking_of_the_bytes_gives_the_same_events(
    lines: list[str], cuts: list[int], crlf: bool
) -> None:
    """Bytes -> LineSplitter -> Multiline: where the reads cut the file does not matter."""
    data = "".join(line + ("\r\n" if crlf else "\n") for line in lines).encode()
    config = MultilineConfig(preset="all")

    def run(chunks: list[bytes]) -> list[str]:
        splitter = LineSplitter()
        grouper = Multiline(config)
        out: list[str] = []
        for chunk in chunks:
            for line in splitter.feed(chunk):
                out += grouper.feed(line.text, 0)
        for line in splitter.flush():
            out += grouper.feed(line.text, 0)
        return out + grouper.flush()

    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[i:j] for i, j in itertools.pairwise(points)]
    assert run(chunks) == run([data]) == _group(config, lines)
