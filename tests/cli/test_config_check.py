"""``wharf config check``: ok on the examples; every error with file, line and key path; exit
codes 0/2; kind detection and ``--kind``; and the TOML locator that finds the lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.config_check import (
    Diagnostic,
    KeyPath,
    Kind,
    check_config,
    detect_kind,
    format_key_path,
    line_of,
    locate,
    parse_key_path,
)
from tests.cli.helpers import assert_one_error_line
from tests.harness import ROOT, clean_env
from wharf.errors import InvalidArgument


def wharf_config_check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``wharf config check ARGS`` as a real child process."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "config", "check", *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, text: str, name: str = "wharf.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SHIPPER = """\
collectors = ["127.0.0.1:7070"]
state_dir = "/var/lib/wharf/shipper"

[[inputs]]
paths = ["/var/log/nginx/*.log"]
topic = "nginx"
"""

COLLECTOR = """\
data_dir = "/var/lib/wharf"
listen = "127.0.0.1:7070"

[storage]
fsync = "always"
"""


# --- the command, as a child process -------------------------------------------------------


@pytest.mark.parametrize("name", ["shipper.toml", "collector.toml"])
def test_example_configs_are_ok(name: str) -> None:
    done = wharf_config_check(ROOT / "config" / name)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            SHIPPER.replace("state_dir =", "state_dr ="),
            "2: state_dr: unknown key (did you mean 'state_dir'?)",
            id="typo",
        ),
        pytest.param(
            SHIPPER + "batch_bytes = 5\n",  # after [[inputs]]: a key of the input, not the root
            "7: inputs[0].batch_bytes: unknown key",
            id="key-in-the-wrong-table",
        ),
        pytest.param(
            COLLECTOR + "fsync_interval_ms = '5'\n",
            "6: storage.fsync_interval_ms: Expected `int`, got `str`",
            id="wrong-type",
        ),
        pytest.param(
            COLLECTOR.replace('"127.0.0.1:7070"', '"localhost"'),
            "2: listen: 'localhost' is not HOST:PORT",
            id="address-without-port",
        ),
        pytest.param(
            COLLECTOR.replace('"127.0.0.1:7070"', '"127.0.0.1:70700"'),
            "2: listen: '127.0.0.1:70700' is not HOST:PORT",
            id="address-bad-port",
        ),
        pytest.param(
            SHIPPER.replace('["127.0.0.1:7070"]', '[\n  "a:1",\n  "b",\n]'),
            "3: collectors[1]: 'b' is not HOST:PORT",
            id="address-in-a-multiline-array",
        ),
        pytest.param(
            COLLECTOR.replace('fsync = "always"', 'fsync = "always'),
            "5: invalid TOML: Illegal character '\\n' (column 16)",
            id="toml-syntax",
        ),
        pytest.param(
            SHIPPER.replace('topic = "nginx"', 'topic = "Nginx"'),
            "6: inputs[0].topic: invalid topic name 'Nginx': character 'N' is not allowed "
            "(lowercase letters, digits, '.', '_', '-')",
            id="bad-topic",
        ),
        pytest.param(
            SHIPPER + 'multiline = { start = "(" }\n',
            "7: inputs[0].multiline: multiline: start pattern '(' does not compile: missing ), "
            "unterminated subpattern at position 0",
            id="bad-regex",
        ),
    ],
)
def test_an_error_names_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    done = wharf_config_check(path)
    assert (done.returncode, done.stderr) == (2, "")
    assert done.stdout == f"{path}:{expected}\n"


BAD_SHIPPER = """\
collectors = [
  "127.0.0.1:7070",
  "collector-2",        # no port
]
state_dir = "/var/lib/wharf/shipper"
batch_byte = 5          # typo
linger_s = "1s"         # wrong type

[tls]
cert = "/etc/wharf/client.pem"

[[inputs]]
paths = "/var/log/nginx/*.log"    # not an array: this input is dropped after this error
topic = "Nginx"                   # so this one is not reported

[[inputs]]
paths = ["var/log/app.log", "/var/log/app2.log", "log/x"]
topic = "app"
multiline = { start = "^\\\\d{4}-", continuation = "^\\\\s", max_line = 5 }

[[inputs]]
'paths' = ["/var/log/x.log"]
topic = "x"
start_at = "middle"

[[inputs]]
topic = "no-paths"
"""


def test_every_error_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_SHIPPER, "shipper.toml")
    done = wharf_config_check(path)
    assert (done.returncode, done.stderr) == (2, "")
    assert done.stdout.splitlines() == [
        f"{path}:3: collectors[1]: 'collector-2' is not HOST:PORT",
        f"{path}:6: batch_byte: unknown key (did you mean 'batch_bytes'?)",
        f"{path}:7: linger_s: Expected `float`, got `str`",
        f"{path}:10: tls.cert: must be given together with tls.key",
        f"{path}:13: inputs[0].paths: Expected `array`, got `str`",
        f"{path}:17: inputs[1].paths[0]: 'var/log/app.log' is not an absolute path",
        f"{path}:17: inputs[1].paths[2]: 'log/x' is not an absolute path",
        f"{path}:19: inputs[1].multiline.max_line: unknown key (did you mean 'max_lines'?)",
        f"{path}:24: inputs[2].start_at: Invalid enum value 'middle'",
        f"{path}:26: inputs[3].paths: missing required key",
    ]


def test_kind_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, COLLECTOR)
    done = wharf_config_check("--kind", "shipper", path)
    assert done.returncode == 2
    assert done.stdout.splitlines() == [
        f"{path}:1: data_dir: unknown key: 'data_dir' is a collector key, and this file is "
        "read as a shipper config",
        f"{path}:1: inputs: no [[inputs]] table: the shipper would follow no file (add one "
        "with paths and topic)",
        f"{path}:2: listen: unknown key: 'listen' is a collector key, and this file is read "
        "as a shipper config",
        f"{path}:4: storage: unknown key: 'storage' is a collector key, and this file is read "
        "as a shipper config",
    ]
    # keys both kinds have do not tell the kind; --kind does
    neutral = write(tmp_path, "[tls]\ncert = ''\n", "neutral.toml")
    assert wharf_config_check("--kind", "collector", neutral).stdout == "ok\n"


def test_undetectable_kind_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[tls]\ncert = ''\n")
    done = wharf_config_check(path)
    assert_one_error_line(done, f"{path}: cannot tell whether this is a shipper or a collector")
    assert "give --kind" in done.stderr and done.stdout == ""


def test_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    done = wharf_config_check(tmp_path / "nope.toml")
    assert_one_error_line(done, f"{tmp_path / 'nope.toml'}: cannot read: No such file")
    assert_one_error_line(wharf_config_check(tmp_path), f"{tmp_path}: cannot read: Is a directory")
    if os.geteuid() != 0:  # root reads a file whatever its mode
        locked = write(tmp_path, SHIPPER)
        locked.chmod(0)
        assert_one_error_line(wharf_config_check(locked), "cannot read: Permission denied")


def test_a_file_that_is_not_utf8_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(SHIPPER.encode().replace(b'nginx"\n', b'nginx\xe9"\n'))
    done = wharf_config_check(path)
    assert (done.returncode, done.stderr) == (2, "")
    assert done.stdout == f"{path}:6: invalid TOML: not UTF-8 (byte 0xe9)\n"


# --- collecting errors, in process ----------------------------------------------------------


def errors(text: str, kind: Kind | None = None) -> list[str]:
    return [d.render("f") for d in check_config(text.encode(), kind)]


def test_detection_from_keys() -> None:
    assert detect_kind(tomllib.loads(SHIPPER)) == "shipper"
    assert detect_kind(tomllib.loads(COLLECTOR)) == "collector"
    assert detect_kind({"inputs": [{"paths": ["/a"]}]}) == "shipper"
    assert detect_kind({"collectors": [], "data_dir": "x", "listen": "y"}) == "collector"
    with pytest.raises(InvalidArgument, match=r"as many shipper keys \(token\) as collector"):
        detect_kind({"token": "", "listen": "x", "tls": {}})
    with pytest.raises(InvalidArgument, match="none of its keys"):
        detect_kind({})


def test_dropped_elements_keep_the_files_indices() -> None:
    # Each of the first three inputs is dropped in turn (a wrong type, then its missing key);
    # the fourth must still be called inputs[3], on its own line.
    text = "".join(f'[[inputs]]\npaths = {i}\ntopic = "t"\n\n' for i in range(3))
    text += '[[inputs]]\npaths = ["/a"]\ntopic = "T"\n'
    assert errors(text) == [
        "f:2: inputs[0].paths: Expected `array`, got `int`",
        "f:6: inputs[1].paths: Expected `array`, got `int`",
        "f:10: inputs[2].paths: Expected `array`, got `int`",
        "f:15: inputs[3].topic: invalid topic name 'T': character 'T' is not allowed "
        "(lowercase letters, digits, '.', '_', '-')",
    ]


def test_errors_inside_a_struct_and_of_the_struct_itself() -> None:
    text = "[topic_defaults]\nsegment_ms = 0\npartitons = 2\n"
    assert errors(text, "collector") == [
        "f:1: topic_defaults: segment_ms must be positive, got 0",
        "f:3: topic_defaults.partitons: unknown key (did you mean 'partitions'?)",
    ]


def test_semantic_checks_run_after_decoding_errors() -> None:
    text = 'listen = 7070\nhttp = "0.0.0.0:7080"\n[search]\nprocesses = -1\n'
    assert errors(text) == [
        "f:1: listen: Expected `str`, got `int`",
        "f:2: http: '0.0.0.0:7080' is not a loopback address and no read token is set: "
        "refusing to serve unauthenticated clients off this host (set auth tokens, or "
        "allow_insecure_remote = true)",
        "f:4: search.processes: must be 0 (one per core) or more, got -1",
    ]


def test_too_many_errors_stop_with_a_note() -> None:
    text = SHIPPER + "".join(f"x{i} = 1\n" for i in range(150))
    found = errors(text)
    assert len(found) == 101 and found[0] == "f:1: more than 100 errors; fix these and check again"
    assert found[1] == "f:7: inputs[0].x0: unknown key"


def test_syntax_error_at_the_end_of_the_file() -> None:
    assert errors('data_dir = "x"\nlisten =') == [
        "f:2: invalid TOML: Invalid value (at end of file)"
    ]


def test_diagnostic_renders_without_a_key_path() -> None:
    assert Diagnostic(3, "", "invalid TOML: x").render("a.toml") == "a.toml:3: invalid TOML: x"
    assert Diagnostic(3, "a.b", "bad").render("a.toml") == "a.toml:3: a.b: bad"


# --- key paths ------------------------------------------------------------------------------

keys = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True), st.text(max_size=6))
key_paths = st.lists(st.one_of(keys, st.integers(0, 99)), max_size=5).map(tuple)


@given(key_paths)
def test_key_path_round_trip(path: KeyPath) -> None:
    assert parse_key_path(format_key_path(path)) == path


def test_key_paths_read_msgspecs_form() -> None:
    assert parse_key_path("$.inputs[1].paths") == ("inputs", 1, "paths")
    assert parse_key_path("$") == ()
    assert parse_key_path("$.fields[...].x") == ("fields",)  # a dict key: ends the path
    assert format_key_path(("a b", 0, "c")) == '"a b"[0].c'


# --- the locator: a table of cases -----------------------------------------------------------

LOCATED = """\
# [commented.out]
top = 1                      # line 2
"a.b".c = 'x'                # line 3: a quoted key with a dot in it, then a dotted key
text = \"\"\"
[not_a_table]
fake = 1
\"\"\"
lit = '''a'b'''''            # line 8: content may end with quotes
arr = [
  "x",   # [comment]
  { k = "]" },
]
esc = "a\\"[b]"              # line 13
[ srv . "my key" ]
port = 2                     # line 15
[[inputs]]
paths = ["/a"]
[inputs.multiline]
start = "^x"                 # line 19
[[inputs]]
[[inputs.rules]]             # line 21
[[inputs.rules]]
name = "r1"                  # line 23
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("top",), 2),
        (("a.b",), 3),
        (("a.b", "c"), 3),
        (("text",), 4),
        (("not_a_table",), 1),  # inside a string: not a table (so: not found, line 1)
        (("fake",), 1),
        (("lit",), 8),
        (("arr",), 9),
        (("arr", 0), 10),
        (("arr", 1), 11),
        (("arr", 1, "k"), 11),
        (("arr", 2), 9),  # no such element: the array's line
        (("esc",), 13),
        (("srv",), 14),
        (("srv", "my key"), 14),
        (("srv", "my key", "port"), 15),
        (("srv", "missing"), 14),  # a missing key: its table's line
        (("inputs",), 16),
        (("inputs", 0), 16),
        (("inputs", 0, "paths"), 17),
        (("inputs", 0, "paths", 0), 17),
        (("inputs", 0, "multiline"), 18),
        (("inputs", 0, "multiline", "start"), 19),
        (("inputs", 1), 20),
        (("inputs", 1, "rules"), 21),
        (("inputs", 1, "rules", 0), 21),
        (("inputs", 1, "rules", 1), 22),
        (("inputs", 1, "rules", 1, "name"), 23),
        (("inputs", 1, "paths"), 20),  # a required key missing: the element's header
        (("inputs", 2, "paths"), 16),  # no such element: the array's first line
        (("nothing", "here"), 1),
    ],
)
def test_locate_a_table_of_cases(path: KeyPath, line: int) -> None:
    tomllib.loads(LOCATED)  # the cases are valid TOML
    assert line_of(locate(LOCATED), path) == line


def test_locate_with_crlf_line_ends() -> None:
    lines = locate("a = 1\r\n[t]\r\nb = [\r\n 1,\r\n 2]\r\n")
    assert lines == {("a",): 1, ("t",): 2, ("t", "b"): 3, ("t", "b", 0): 4, ("t", "b", 1): 5}


# --- the locator: generated documents whose every line is known -------------------------------


def quote(key: str) -> str:
    """``key`` as TOML writes it: bare, literal or basic (TOML wants DEL escaped, JSON not)."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    if len(key) % 2 and not re.search(r"['\x00-\x1f\x7f]", key):
        return f"'{key}'"
    return json.dumps(key, ensure_ascii=False).replace("\x7f", "\\u007f")


SCALARS = st.sampled_from(
    [
        "1",
        "-2.5e3",
        "true",
        "1979-05-27 07:32:00Z",
        '"a # not a comment"',
        '"[x]"',
        "'C:\\path\\'",
        '"q\\"uote]"',
    ]
)
MULTILINE = st.sampled_from(
    [
        '"""\n[fake]\nk = 1\n"""',
        "'''\n[[fake]]\n'''",
        '"""a\\"""\n"""',
        '"""\nx""""',
    ]
)


@dataclass
class Doc:
    """TOML text built line by line, with the line each key path must be found on."""

    lines: list[str] = field(default_factory=list)
    expected: dict[KeyPath, int] = field(default_factory=dict)

    def at(self, path: KeyPath) -> None:
        self.expected.setdefault(path, len(self.lines) + 1)

    def pair(self, draw: st.DrawFn, base: KeyPath, keys: tuple[str, ...]) -> None:
        """``keys = value`` in the table ``base``."""
        for end in range(1, len(keys) + 1):
            self.at((*base, *keys[:end]))
        path = (*base, *keys)
        head = f"{'.'.join(map(quote, keys))} = "
        kind = draw(st.sampled_from(["scalar", "multiline", "inline", "array", "long array"]))
        if kind == "scalar":
            self.lines.append(head + draw(SCALARS))
        elif kind == "multiline":
            self.lines += (head + draw(MULTILINE)).split("\n")
        elif kind == "inline":
            inner = draw(st.lists(keys_st, unique=True, max_size=3))
            for k in inner:
                self.at((*path, k))
            body = ", ".join(f"{quote(k)} = {draw(SCALARS)}" for k in inner)
            self.lines.append(head + "{ " + body + " }")
        elif kind == "array":
            items = draw(st.lists(SCALARS, max_size=3))
            for i in range(len(items)):
                self.at((*path, i))
            self.lines.append(head + "[" + ", ".join(items) + "]")
        else:
            self.lines.append(head + "[  # a comment with ] and [")
            for i, item in enumerate(draw(st.lists(SCALARS, max_size=3))):
                self.lines.append("")
                self.at((*path, i))
                self.lines.append(f"  {item},  # {i}")
            self.lines.append("]")

    def table(self, draw: st.DrawFn, base: KeyPath, firsts: list[str] | None = None) -> None:
        """Pairs (some dotted) under ``base``, with ``firsts`` (else drawn) as first keys."""
        if firsts is None:
            firsts = draw(st.lists(keys_st, unique=True, max_size=3))
        for k in firsts:
            more = draw(st.lists(keys_st, max_size=1))
            self.pair(draw, base, (k, *more))
            if draw(st.booleans()):
                self.lines.append("# [fake.header]")

    def header(self, keys: tuple[str, ...], array: bool = False) -> None:
        sep = " . " if len(keys) % 2 else "."
        name = sep.join(map(quote, keys))
        self.lines.append(f"[[{name}]]" if array else f"[{name}]")


keys_st = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,5}", fullmatch=True),
    st.text(st.characters(codec="utf-8"), max_size=4),
)


@st.composite
def documents(draw: st.DrawFn) -> Doc:
    doc = Doc()
    names = draw(st.lists(keys_st, unique=True, max_size=8))
    split = draw(st.integers(0, len(names)))
    doc.table(draw, (), names[:split])  # root keys and table names never collide
    for name in names[split:]:
        style = draw(st.sampled_from(["table", "implied", "array"]))
        if style == "table":
            doc.at((name,))
            doc.header((name,))
            doc.table(draw, (name,))
        elif style == "implied":  # [a.b] defines a as well
            sub = draw(keys_st)
            doc.at((name,))
            doc.at((name, sub))
            doc.header((name, sub))
            doc.table(draw, (name, sub))
        else:
            for i in range(draw(st.integers(1, 3))):
                doc.at((name,))
                doc.at((name, i))
                doc.header((name,), array=True)
                doc.table(draw, (name, i))
                for j in range(draw(st.integers(0, 2))):  # nested, under element i
                    doc.at((name, i, "\x00nested"))
                    doc.at((name, i, "\x00nested", j))
                    doc.header((name, "\x00nested"), array=True)
    return doc


@given(documents())
def test_locate_finds_every_key_on_its_line(doc: Doc) -> None:
    text = "\n".join(doc.lines) + "\n"
    parsed = tomllib.loads(text)  # the generator writes valid TOML only
    for path in doc.expected:
        node: Any = parsed
        for part in path:
            node = node[part]  # every expected path is in the document tomllib reads
    assert locate(text) == doc.expected


@given(documents(), st.data())
def test_locate_never_fails_on_broken_text(doc: Doc, data: st.DataObject) -> None:
    text = "\n".join(doc.lines)
    cut = data.draw(st.integers(0, len(text)))
    noise = data.draw(st.text(max_size=8))
    for broken in (text[:cut], text[:cut] + noise + text[cut:]):
        lines = locate(broken)
        assert all(1 <= line <= broken.count("\n") + 1 for line in lines.values())


@given(st.text())
def test_locate_never_fails_on_any_text(text: str) -> None:
    assert line_of(locate(text), ("a", 0, "b")) >= 1
