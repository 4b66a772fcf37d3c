"""CRI and docker json-file lines, and the merging of their fragments.

Vectors: ``../shared/data/vectors/cri.jsonl``: elastic/beats @ 79c83984
(``libbeat/reader/readjson/docker_json_test.go``, TestDockerJSON; Apache-2.0), kubernetes @
04791b49 (``pkg/kubelet/kuberuntime/logs/logs_test.go``, TestParseLog; Apache-2.0) and
vectordotdev/vector (``src/sources/kubernetes_logs/parser/{cri,docker}.rs``; MPL-2.0).

How the peers' tests map onto Wharf's stages (``LineSplitter`` -> ``CriParser``/``DockerParser``
-> ``PartialMerger``):

- Beats tests a reader: it hands over the first message it assembles, with the bytes consumed
  so far. We feed the case's lines to the merger (Filebeat's ``partial``, ``stream`` and
  ``format`` options map onto ``PartialMerger(partial=, streams=)`` and the parser choice;
  ``format: auto`` is Beats' rule: a line starting with ``{`` is docker, else CRI) and compare
  the first event, its ``end`` offset being the bytes consumed. Beats' message keeps the
  container line's trailing newline, which Filebeat strips right after this reader
  (``filebeat/input/log/harvester.go`` adds ``readfile.NewStripNewline`` after ``readjson``);
  Wharf's messages never carry a line terminator, so that newline is removed from the expected
  text.
- Kubernetes and Vector test single lines: the parser's result is compared. Kubernetes keeps
  the trailing newline of a full CRI line in the message (the kubelet writes it back out);
  it is removed from the expected text for the same reason.
- An invalid case must give a parse error on its last line, and no event from it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from parsers import Parsed, get_parser
from parsers.cri import CriParser
from parsers.docker import DockerParser
from parsers.lines import LineSplitter
from parsers.partial import Merged, PartialMerger
from tests.parsers._vectors import params
from tests.parsers.test_clf import expected_ns

_CRI = CriParser()
_DOCKER = DockerParser()


def _raw(value: Any) -> bytes:
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    assert isinstance(value, str)
    return value.encode("utf-8")


def _read(case: dict[str, Any]) -> list[tuple[str, int, int]]:
    """The case's lines as the line splitter gives them: (text, offset, size). Each vector line
    is one file line (its own trailing newline, if any, is its terminator)."""
    splitter = LineSplitter(errors="surrogateescape")
    out = []
    for value in case["input_lines"]:
        raw = _raw(value)
        lines = splitter.feed(raw) + splitter.flush()
        assert len(lines) <= 1
        out += [(line.text, line.offset, line.size) for line in lines]
    return out


def _parse(fmt: str, text: str) -> Parsed:
    if fmt == "cri":
        return _CRI.parse(text)
    if fmt == "docker-json":
        return _DOCKER.parse(text)
    if fmt.startswith("auto") or fmt == "unknown":
        # Beats' format auto: a line starting with '{' is docker json-file, else CRI.
        return _DOCKER.parse(text) if text.startswith("{") else _CRI.parse(text)
    raise AssertionError(f"vector format not mapped: {fmt}")


def _strip_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def _expected_message(case: dict[str, Any]) -> bytes:
    message = _raw(case["expected"]["message"])
    if case["source"]["repo"] in ("elastic/beats", "kubernetes/kubernetes"):
        message = message.removesuffix(b"\n")
    return message


def _message_bytes(parsed: Parsed) -> bytes:
    message = parsed.fields["message"]
    assert isinstance(message, str)
    return message.encode("utf-8", "surrogateescape")


def _check_time_stream(parsed: Parsed, expected: dict[str, Any]) -> None:
    assert parsed.fields["stream"] == expected["stream"]
    assert parsed.ts == expected_ns({"$timestamp": expected["time"]})


def _beats_reader(case: dict[str, Any]) -> None:
    options = case["reader_options"]
    assert set(options) == {"stream", "partial", "format", "criflags"}
    # criflags says whether Beats expects the P/F tag; our CRI parser sees it by itself.
    fmt = {"auto": "auto", "cri": "cri", "docker": "docker-json"}[options["format"]]
    streams = None if options["stream"] == "all" else {options["stream"]}
    merger = PartialMerger(partial=options["partial"], streams=streams)
    events: list[Merged] = []
    errors: list[int] = []
    lines = _read(case)
    for i, (text, offset, size) in enumerate(lines):
        parsed = _parse(fmt, text)
        if parsed.error is not None:
            errors.append(i)
            continue
        events += merger.feed(parsed, offset, size)
    if not case["valid"]:
        assert errors and errors[-1] == len(lines) - 1
        assert all(e.end <= lines[-1][1] for e in events)
        return
    assert events, "no event"
    event = events[0]
    expected = case["expected"]
    assert event.complete or not options["partial"]
    assert _message_bytes(event.parsed) == _expected_message(case)
    _check_time_stream(event.parsed, expected)
    assert event.end == expected["bytes_consumed"]
    if "docker" in expected:
        assert event.parsed.fields["attrs"] == expected["docker"]["attrs"]


def _single_line(case: dict[str, Any]) -> None:
    lines = _read(case)
    results = [_parse(case["format"], text) for text, _, _ in lines]
    if not case["valid"]:
        for value in case["input_lines"]:
            raw = _raw(value).decode("utf-8", "surrogateescape")
            assert _parse(case["format"], raw.removesuffix("\n")).error is not None
        assert all(r.error is not None for r in results)
        return
    assert len(results) == 1
    parsed = results[0]
    assert parsed.error is None, parsed.error
    expected = case["expected"]
    assert _message_bytes(parsed) == _expected_message(case)
    _check_time_stream(parsed, expected)
    if "partial" in expected:
        assert parsed.fields["tag"] == ("P" if expected["partial"] else "F")


@pytest.mark.parametrize("case", params("cri"))
def test_vector(case: dict[str, Any]) -> None:
    if case["reader_options"] is not None:
        _beats_reader(case)
    else:
        _single_line(case)


# --- the parsers -------------------------------------------------------------------------------


def test_cri_fields() -> None:
    parsed = _CRI.parse("2016-10-06T00:17:09.669794202Z stderr P:TAG1 part one ")
    assert parsed.fields == {"stream": "stderr", "tag": "P", "message": "part one "}
    assert parsed.ts == expected_ns({"$timestamp": "2016-10-06T00:17:09.669794202Z"})
    # An empty full line, and the tag-less form.
    assert _CRI.parse("2016-10-06T00:17:09Z stdout F ").fields["message"] == ""
    assert _CRI.parse("2016-10-06T00:17:09Z stdout F").fields["message"] == ""
    assert _CRI.parse("2016-10-06T00:17:09Z stdout Fx y").fields == {
        "stream": "stdout",
        "tag": "F",
        "message": "Fx y",
    }
    for bad in ["", "x", "2016-10-06T00:17:09Z stdin F x", "yesterday stdout F x", "a b"]:
        assert _CRI.parse(bad).error is not None


def test_docker_fields() -> None:
    line = '{"log":"hi\\n","stream":"stderr","time":"2016-10-06T00:17:09Z","attrs":{"a":"b"}}'
    parsed = _DOCKER.parse(line)
    assert parsed.fields == {"stream": "stderr", "tag": "F", "message": "hi", "attrs": {"a": "b"}}
    # A raw newline inside the string (Fluent Bit's test data has one): accepted.
    raw = '{"log": "cc\n", "stream": "stdout", "time": "2021-02-01T16:45:03.01233z"}'
    assert _DOCKER.parse(raw).fields == {"stream": "stdout", "tag": "F", "message": "cc"}
    for bad in ["", "{", "[]", '{"log":"x","stream":"stdout","time":"x"}', "{" * 10_000]:
        assert _DOCKER.parse(bad).error is not None


def test_docker_escaped_lone_surrogate_is_replaced() -> None:
    """JSON can escape a lone surrogate ("\\ud800"), which no UTF-8 encoder takes later on."""
    line = (
        r'{"log":"a\ud800b\n","stream":"stdout","time":"2016-10-05T00:00:30Z",'
        r'"attrs":{"k":"\udc80"}}'
    )
    parsed = _DOCKER.parse(line)
    assert parsed.error is None
    assert "\ufffd" in parsed.fields["message"] and "\ufffd" in parsed.fields["attrs"]["k"]
    msgspec.json.encode(parsed)
    merger = PartialMerger()
    assert merger.feed(Parsed(fields={"stream": "stdout", "tag": "P", "message": "x\ud800"})) == []
    (event,) = merger.flush()
    assert event.parsed.fields["message"].startswith("x\ufffd")
    msgspec.json.encode(event)


def test_registry() -> None:
    assert isinstance(get_parser("cri"), CriParser)
    assert isinstance(get_parser("docker"), DockerParser)


# --- the merger --------------------------------------------------------------------------------


def _cri(stream: str, tag: str, text: str, second: int = 0) -> Parsed:
    parsed = _CRI.parse(f"2020-01-01T00:00:{second:02d}Z {stream} {tag} {text}")
    assert parsed.error is None
    return parsed


def test_merge_per_stream_keeps_first_time_and_offsets() -> None:
    merger = PartialMerger()
    assert merger.feed(_cri("stdout", "P", "a", 1), 0, 10) == []
    assert merger.feed(_cri("stderr", "P", "x", 2), 10, 10) == []
    assert merger.pending_offset == 0 and merger.pending_parts == 2
    (out,) = merger.feed(_cri("stderr", "F", "y", 3), 20, 10)
    assert out.parsed.fields == {"stream": "stderr", "tag": "F", "message": "xy"}
    assert (out.offset, out.end, out.parts, out.complete) == (10, 30, 2, True)
    assert out.parsed.ts == expected_ns({"$timestamp": "2020-01-01T00:00:02Z"})
    assert merger.pending_offset == 0
    (out,) = merger.feed(_cri("stdout", "F", "b", 4), 30, 10)
    assert out.parsed.fields["message"] == "ab" and (out.offset, out.end) == (0, 40)
    assert merger.pending_offset is None and merger.pending_bytes == 0


def test_utf8_character_cut_between_fragments_is_rejoined() -> None:
    """A 16 KiB cut can fall inside a character: read with surrogateescape, the merger joins
    the bytes before decoding. The two halves of "é" (c3 a9) are in two fragments."""
    data = (
        b"2020-01-01T00:00:00Z stdout P caf\xc3\n"
        b"2020-01-01T00:00:00Z stdout F \xa9!\n"
        b"2020-01-01T00:00:00Z stdout F bad \xff\n"
    )
    splitter = LineSplitter(errors="surrogateescape")
    merger = PartialMerger()
    events = []
    for line in splitter.feed(data):
        events += merger.feed(_CRI.parse(line.text), line.offset, line.size)
    assert [e.parsed.fields["message"] for e in events] == ["café!", "bad \ufffd"]
    assert merger.invalid_utf8_events == 1
    assert splitter.invalid_utf8_lines == 3


def test_max_bytes_splits_without_losing_anything() -> None:
    merger = PartialMerger(max_bytes=10)
    out = []
    for i, text in enumerate(["aaaa", "bbbb", "cccc", "dddd"]):
        out += merger.feed(_cri("stdout", "P", text), i * 5, 5)
    out += merger.feed(_cri("stdout", "F", "ee"), 20, 5)
    assert [(e.parsed.fields["message"], e.complete) for e in out] == [
        ("aaaabbbb", False),
        ("ccccddddee", True),
    ]
    assert merger.split_events == 1
    assert [(e.offset, e.end) for e in out] == [(0, 10), (10, 25)]


def test_flush_due_and_flush() -> None:
    merger = PartialMerger(flush_timeout_ns=100)
    merger.feed(_cri("stdout", "P", "a"), 0, 5, now_ns=1_000)
    merger.feed(_cri("stderr", "P", "b"), 5, 5, now_ns=1_050)
    assert merger.flush_due(1_099) == []
    (due,) = merger.flush_due(1_100)
    assert due.parsed.fields == {"stream": "stdout", "tag": "P", "message": "a"}
    assert not due.complete
    (rest,) = merger.flush()
    assert rest.parsed.fields["message"] == "b"
    assert merger.flush() == [] and merger.pending_offset is None


def test_filters_and_partial_off() -> None:
    merger = PartialMerger(streams={"stderr"})
    assert merger.feed(_cri("stdout", "F", "a"), 0, 5) == []
    assert merger.dropped_lines == 1
    merger = PartialMerger(partial=False)
    (out,) = merger.feed(_cri("stdout", "P", "a"), 0, 5)
    assert out.parsed.fields["message"] == "a" and not out.complete
    with pytest.raises(ValueError, match="parsed CRI or docker lines only"):
        merger.feed(Parsed(error="nope"))
