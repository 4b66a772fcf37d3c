"""Group the lines of one event (a stack trace, a continued message) into one record.

Pure and incremental: feed it lines in file order, each with a clock value, and it returns the
events it completes. The output depends only on the lines (and on when ``flush_due``/``flush``
are called), never on how the lines were batched. Three ways to say what belongs together:

- **Filebeat** (``pattern``, ``negate``, ``match``): a line "matches" when ``pattern`` is found
  in it, inverted by ``negate``. With ``match="after"`` matching lines are appended to the line
  before them; with ``match="before"`` they are prepended to the line after them. The usual
  "a new event starts with ``[``" is ``pattern=r"^\\[", negate=True, match="after"``.
- **start/continuation** (Fluent Bit's two-state regex parser): ``start`` begins an event,
  ``continuation`` (while in one) extends it, any other line is an event of its own. Only
  ``start``: every other line continues. Only ``continuation``: other lines start events.
- **state machines** (``preset``, or your own ``rules``): Google's fluent-plugin-detect-exceptions
  machines, which Fluent Bit's built-in ``java``/``python``/``go``/``ruby`` parsers copy. Presets:
  ``java`` (also ``js``, ``csharp``), ``python``, ``go``, ``ruby`` (also Rails), ``php``,
  ``dart``, and ``all`` (every language at once). A trace is one event; every other line is an
  event of its own. ``rules`` are ``(from_states, regex, to_state)`` with ``from_states`` a
  comma-separated list; ``start_state`` is the initial state.

Limits: an event is emitted early, and the machine reset, when adding a line would take it past
``max_bytes`` (UTF-8 bytes, one newline per line counted) or when it reaches ``max_lines``; the
next lines then form the next events (nothing is dropped). ``flush_due(now_ns)`` emits an event
whose last line is ``flush_timeout_ns`` old; ``flush()`` emits whatever is held (end of input).

Events are the lines joined with ``\\n``. Every fed line lands in exactly one event, in order,
so with lines that hold no ``\\n`` (``LineSplitter``'s never do) an event of ``k`` newlines
covers the next ``k + 1`` lines. ``pending_lines`` says how many of the last lines fed are not
yet in an emitted event: a shipper must not checkpoint past the first of them.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import msgspec

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT_NS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LINES",
    "PRESETS",
    "Multiline",
    "MultilineConfig",
]

# Filebeat's default: a Java trace of a deep framework stack is a few hundred lines.
DEFAULT_MAX_LINES: Final = 500
# The line splitter's limit (DEFAULT_MAX_LINE_BYTES, 1 MiB): an event is never bigger than the
# biggest line we accept, so every later limit (batch, frame) has one number to respect.
DEFAULT_MAX_BYTES: Final = 1 << 20
# Filebeat's default (Fluent Bit: 4 s). A program writes a trace in one go; 5 s of silence
# means the event is over, and the lines are not held back from the collector any longer.
DEFAULT_FLUSH_TIMEOUT_NS: Final = 5_000_000_000

_START: Final = "start_state"

Rule = tuple[str, str, str]

# Google's fluent-plugin-detect-exceptions (lib/fluent/plugin/exception_detector.rb, Apache-2.0),
# state by state; Fluent Bit's built-in parsers (src/multiline/flb_ml_parser_*.c) use the same
# rules, and Fluent Bit's ruby parser adds the ``file:line:in`` / ``from`` form of plain Ruby.
_JAVA: Final[tuple[Rule, ...]] = (
    (
        "start_state, java_start_exception",
        r"(?:Exception|Error|Throwable|V8 errors stack trace)[:\r\n]",
        "java_after_exception",
    ),
    ("java_after_exception", r"^[\t ]*nested exception is:[\t ]*", "java_start_exception"),
    ("java_after_exception", r"^[\r\n]*$", "java_after_exception"),
    ("java_after_exception, java", r"^[\t ]+(?:eval )?at ", "java"),
    # C# nested exception.
    ("java_after_exception, java", r"^[\t ]+--- End of inner exception stack trace ---$", "java"),
    # C# exception from async code.
    (
        "java_after_exception, java",
        r"^--- End of stack trace from previous location where exception was thrown ---$",
        "java",
    ),
    ("java_after_exception, java", r"^[\t ]*(?:Caused by|Suppressed):", "java_after_exception"),
    ("java_after_exception, java", r"^[\t ]*... \d+ (?:more|common frames omitted)", "java"),
)
_PYTHON: Final[tuple[Rule, ...]] = (
    ("start_state", r"^Traceback \(most recent call last\):$", "python"),
    ("python", r"^[\t ]+File ", "python_code"),
    ("python_code", r"[^\t ]", "python"),
    ("python", r"^(?:[^\s.():]+\.)*[^\s.():]+:", "start_state"),
)
_PHP: Final[tuple[Rule, ...]] = (
    (
        "start_state",
        r"(?:PHP (?:Notice|Parse error|Fatal error|Warning):)|(?:exception '[^']+' with message ')",
        "php_stack_begin",
    ),
    ("php_stack_begin", r"^Stack trace:", "php_stack_frames"),
    ("php_stack_frames", r"^#\d", "php_stack_frames"),
    ("php_stack_frames", r"^\s+thrown in ", "start_state"),
)
_GO: Final[tuple[Rule, ...]] = (
    ("start_state", r"\bpanic: ", "go_after_panic"),
    ("start_state", r"http: panic serving", "go_goroutine"),
    ("go_after_panic", r"^$", "go_goroutine"),
    ("go_after_panic, go_after_signal, go_frame_line1", r"^$", "go_goroutine"),
    ("go_after_panic", r"^\[signal ", "go_after_signal"),
    ("go_goroutine", r"^goroutine \d+ \[[^\]]+\]:$", "go_frame_line1"),
    ("go_frame_line1", r"^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by ", "go_frame_line2"),
    ("go_frame_line2", r"^\s", "go_frame_line1"),
)
_RUBY: Final[tuple[Rule, ...]] = (
    ("start_state", r"Error \(.*\):$", "ruby_before_rails_trace"),
    ("ruby_before_rails_trace", r"^  $", "ruby"),
    ("ruby_before_rails_trace", r"^[\t ]+.*?\.rb:\d+:in `", "ruby"),
    ("ruby", r"^[\t ]+.*?\.rb:\d+:in `", "ruby"),
    # Fluent Bit's ruby parser: "app.rb:6:in `/': divided by 0 (ZeroDivisionError)" and then
    # "\tfrom app.rb:1:in `<main>'" lines.
    ("start_state, ruby_start_exception", r"^.+:\d+:in\s+.*", "ruby_after_exception"),
    ("ruby_after_exception, ruby", r"^\s+from\s+.*:\d+:in\s+.*", "ruby"),
)
_DART: Final[tuple[Rule, ...]] = (
    ("start_state", r"^Unhandled exception:$", "dart_exc"),
    ("dart_exc", r"^Instance of", "dart_stack"),
    ("dart_exc", r"^Exception", "dart_stack"),
    ("dart_exc", r"^Bad state", "dart_stack"),
    ("dart_exc", r"^IntegerDivisionByZeroException", "dart_stack"),
    ("dart_exc", r"^Invalid argument", "dart_stack"),
    ("dart_exc", r"^RangeError", "dart_stack"),
    ("dart_exc", r"^Assertion failed", "dart_stack"),
    ("dart_exc", r"^Cannot instantiate", "dart_stack"),
    ("dart_exc", r"^Reading static variable", "dart_stack"),
    ("dart_exc", r"^UnimplementedError", "dart_stack"),
    ("dart_exc", r"^Unsupported operation", "dart_stack"),
    ("dart_exc", r"^Concurrent modification", "dart_stack"),
    ("dart_exc", r"^Out of Memory", "dart_stack"),
    ("dart_exc", r"^Stack Overflow", "dart_stack"),
    ("dart_exc", r"^'.+?':.+?$", "dart_type_err_line1"),
    ("dart_type_err_line1", r"^#\d+\s+.+?\(.+?\)$", "dart_stack"),
    ("dart_type_err_line1", r"^.+?$", "dart_type_err_line2"),
    ("dart_type_err_line2", r"^.*?\^.*?$", "dart_type_err_line3"),
    ("dart_type_err_line3", r"^$", "dart_type_err_line4"),
    ("dart_type_err_line4", r"^$", "dart_stack"),
    ("dart_exc", r"^FormatException", "dart_format_err_line1"),
    ("dart_format_err_line1", r"^#\d+\s+.+?\(.+?\)$", "dart_stack"),
    ("dart_format_err_line1", r"^.", "dart_format_err_line2"),
    ("dart_format_err_line2", r"^.*?\^", "dart_format_err_line3"),
    ("dart_format_err_line3", r"^$", "dart_stack"),
    ("dart_exc", r"^NoSuchMethodError:", "dart_method_err_line1"),
    ("dart_method_err_line1", r"^Receiver:", "dart_method_err_line2"),
    ("dart_method_err_line2", r"^Tried calling:", "dart_method_err_line3"),
    ("dart_method_err_line3", r"^Found:", "dart_stack"),
    ("dart_method_err_line3", r"^#\d+\s+.+?\(.+?\)$", "dart_stack"),
    ("dart_stack", r"^#\d+\s+.+?\(.+?\)$", "dart_stack"),
    ("dart_stack", r"^<asynchronous suspension>$", "dart_stack"),
)

PRESETS: Final[dict[str, tuple[Rule, ...]]] = {
    "java": _JAVA,
    "js": _JAVA,
    "javascript": _JAVA,
    "csharp": _JAVA,
    "python": _PYTHON,
    "py": _PYTHON,
    "php": _PHP,
    "go": _GO,
    "ruby": _RUBY,
    "rb": _RUBY,
    "dart": _DART,
    "all": _JAVA + _PYTHON + _PHP + _GO + _RUBY + _DART,
}


class MultilineConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """How lines group into events: set exactly one of ``preset``, ``rules``, ``pattern``, or
    ``start``/``continuation`` (see the module docstring)."""

    preset: str | None = None
    rules: tuple[tuple[str, str, str], ...] = ()
    start: str | None = None
    continuation: str | None = None
    pattern: str | None = None
    negate: bool = False
    match: Literal["after", "before"] = "after"
    max_lines: int = DEFAULT_MAX_LINES
    max_bytes: int = DEFAULT_MAX_BYTES
    flush_timeout_ns: int = DEFAULT_FLUSH_TIMEOUT_NS


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"multiline: {what} {pattern!r} does not compile: {exc}") from exc


# Trace detection statuses (fluent-plugin-detect-exceptions' names).
_NO_TRACE: Final = 0
_START_TRACE: Final = 1
_INSIDE_TRACE: Final = 2
_END_TRACE: Final = 3


class _Machine:
    """detect-exceptions' ExceptionDetector: one state, rules per state, first match wins."""

    __slots__ = ("rules", "state")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        table: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for from_states, pattern, to_state in rules:
            compiled = _compile(pattern, "rule pattern")
            for state in from_states.split(","):
                targets = table.setdefault(state.strip(), [])
                if (compiled, to_state) not in targets:
                    targets.append((compiled, to_state))
        if _START not in table:
            raise ValueError(f"multiline: no rule leaves {_START!r}, so nothing can ever start")
        self.rules = table
        self.state = _START

    def _transition(self, text: str) -> bool:
        for pattern, to_state in self.rules.get(self.state, ()):
            if pattern.search(text):
                self.state = to_state
                return True
        self.state = _START
        return False

    def update(self, line: str) -> int:
        # The rules were written for lines that still end in "\n" (Ruby's "Error\n" matches
        # "Error[:\r\n]", an empty line "\n" matches "[^\t ]"); ours have lost it.
        text = line + "\n"
        was_inside = self.state != _START
        before = self._transition(text)
        if not before and was_inside:
            # Back in start_state: the line may begin another trace. (From start_state, the
            # same line cannot match the second time: skip that.)
            self._transition(text)
        after = self.state != _START
        if before:
            return _INSIDE_TRACE if after else _END_TRACE
        return _START_TRACE if after else _NO_TRACE


class Multiline:
    """Feed lines, get events (see the module docstring)."""

    def __init__(self, config: MultilineConfig) -> None:
        modes = [
            config.preset is not None,
            bool(config.rules),
            config.pattern is not None,
            config.start is not None or config.continuation is not None,
        ]
        if sum(modes) != 1:
            raise ValueError(
                "multiline: set exactly one of preset, rules, pattern, or start/continuation"
            )
        if config.max_lines < 1 or config.max_bytes < 1 or config.flush_timeout_ns < 0:
            raise ValueError(
                "multiline: max_lines and max_bytes must be at least 1, flush_timeout_ns >= 0"
            )
        if config.match not in ("after", "before"):
            raise ValueError(f"multiline: match must be 'after' or 'before', not {config.match!r}")
        self.config = config
        self._machine: _Machine | None = None
        self._pattern: re.Pattern[str] | None = None
        self._negate = config.negate
        self._before = config.match == "before"
        if config.preset is not None:
            rules = PRESETS.get(config.preset.lower())
            if rules is None:
                known = ", ".join(sorted(PRESETS))
                raise ValueError(f"multiline: unknown preset {config.preset!r} (known: {known})")
            self._machine = _Machine(rules)
        elif config.rules:
            self._machine = _Machine(config.rules)
        elif config.pattern is not None:
            self._pattern = _compile(config.pattern, "pattern")
        elif config.start is not None and config.continuation is not None:
            self._machine = _Machine(
                (
                    (_START, config.start, "cont"),
                    ("cont", config.continuation, "cont"),
                )
            )
        elif config.start is not None:
            # Every line that is not a start continues: Filebeat's negate + after.
            self._pattern = _compile(config.start, "start pattern")
            self._negate = True
            self._before = False
        else:
            assert config.continuation is not None
            self._pattern = _compile(config.continuation, "continuation pattern")
            self._negate = False
            self._before = False
        self._max_lines = config.max_lines
        self._max_bytes = config.max_bytes
        self._timeout = config.flush_timeout_ns
        self._lines: list[str] = []
        self._bytes = 0
        self._first_ns = 0
        self._last_ns = 0

    @property
    def pending_lines(self) -> int:
        """How many of the last lines fed are held, not yet part of an emitted event."""
        return len(self._lines)

    @property
    def pending_bytes(self) -> int:
        """UTF-8 bytes held (one newline per line counted)."""
        return self._bytes

    @property
    def pending_since(self) -> int | None:
        """The clock value of the oldest held line (None: nothing held)."""
        return self._first_ns if self._lines else None

    def feed(self, line: str, now_ns: int) -> list[str]:
        """Take the next line (without its line ending); return the events it completes."""
        out: list[str] = []
        size = (len(line) if line.isascii() else len(line.encode("utf-8", "surrogatepass"))) + 1
        if self._lines and self._bytes + size > self._max_bytes:
            self._force_flush(out)
        if self._machine is not None:
            self._feed_machine(line, size, now_ns, out)
        else:
            self._feed_pattern(line, size, now_ns, out)
        if len(self._lines) >= self._max_lines:
            self._force_flush(out)
        return out

    def flush_due(self, now_ns: int) -> list[str]:
        """Emit the held event if its last line came ``flush_timeout_ns`` ago or more."""
        out: list[str] = []
        if self._lines and now_ns - self._last_ns >= self._timeout:
            self._force_flush(out)
        return out

    def flush(self) -> list[str]:
        """Emit whatever is held (end of input, or a rotated file)."""
        out: list[str] = []
        self._force_flush(out)
        return out

    def _add(self, line: str, size: int, now_ns: int) -> None:
        if not self._lines:
            self._first_ns = now_ns
        self._lines.append(line)
        self._bytes += size
        self._last_ns = now_ns

    def _emit(self, out: list[str]) -> None:
        if self._lines:
            out.append("\n".join(self._lines))
            self._lines = []
            self._bytes = 0

    def _force_flush(self, out: list[str]) -> None:
        self._emit(out)
        if self._machine is not None:
            self._machine.state = _START

    def _feed_machine(self, line: str, size: int, now_ns: int, out: list[str]) -> None:
        assert self._machine is not None
        status = self._machine.update(line)
        if status == _INSIDE_TRACE:
            self._add(line, size, now_ns)
        elif status == _START_TRACE:
            self._emit(out)
            self._add(line, size, now_ns)
        elif status == _END_TRACE:
            self._add(line, size, now_ns)
            self._emit(out)
        else:
            self._emit(out)
            self._add(line, size, now_ns)
            self._emit(out)

    def _feed_pattern(self, line: str, size: int, now_ns: int, out: list[str]) -> None:
        assert self._pattern is not None
        matched = (self._pattern.search(line) is not None) != self._negate
        if self._before:
            # Matching lines lead up to the next non-matching one, which ends the event.
            self._add(line, size, now_ns)
            if not matched:
                self._emit(out)
        else:
            # Matching lines follow the last non-matching one.
            if not matched:
                self._emit(out)
            self._add(line, size, now_ns)
