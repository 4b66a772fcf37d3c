"""Loader for the peer test vectors in ``../shared/data/vectors`` and our list of deviations.

The vectors were written by other projects (go-syslog, go-logfmt, Beats, VRL, ...; each case
carries its ``source``) and are used as they are: see ``../shared/data/README.md``. A case we do
not pass must be listed in ``deviations.toml`` with a reason; ``params`` marks exactly those
cases ``xfail(strict=True)``, so a listed case that starts passing fails the suite.
"""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VECTORS_DIR = DATA_DIR / "vectors"
LOGS_DIR = DATA_DIR / "logs"
DEVIATIONS_FILE = Path(__file__).resolve().parent / "deviations.toml"


@functools.cache
def _load(name: str) -> tuple[dict[str, Any], ...]:
    path = VECTORS_DIR / (name if name.endswith(".jsonl") else f"{name}.jsonl")
    cases: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                cases.append(json.loads(line))
    ids = [c["id"] for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"{path}: duplicate case ids {sorted(duplicates)}")
    return tuple(cases)


def load_cases(name: str) -> list[dict[str, Any]]:
    """All cases of ``vectors/<name>.jsonl`` (``name`` may be a path under vectors/, e.g.
    ``"multiline/detect_exceptions"``), in file order. Each case is a fresh dict."""
    return [json.loads(json.dumps(c)) for c in _load(name)]


@functools.cache
def _deviations() -> dict[str, str]:
    data = tomllib.loads(DEVIATIONS_FILE.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for entry in data.get("deviation", []):
        case_id, reason = entry["id"], entry["reason"]
        if case_id in out:
            raise ValueError(f"{DEVIATIONS_FILE}: {case_id!r} listed twice")
        if not reason.strip():
            raise ValueError(f"{DEVIATIONS_FILE}: {case_id!r} has no reason")
        out[case_id] = reason
    return out


def deviations() -> dict[str, str]:
    """Case id -> reason, for every case listed in ``deviations.toml``."""
    return dict(_deviations())


def decode_text(value: Any) -> str:
    """A vector's text: a plain string, or ``{"hex": ...}`` for bytes that are not valid UTF-8
    (decoded the way Wharf reads files: invalid sequences replaced)."""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"]).decode("utf-8", "replace")
    if not isinstance(value, str):
        raise TypeError(f"not a vector text: {value!r}")
    return value


def params(name: str, *, where: Any = None) -> list[Any]:
    """``pytest.param`` per case (id = the case id), listed deviations marked strict xfail.

    ``where`` optionally filters cases (a predicate on the case dict).
    """
    devs = _deviations()
    out = []
    for case in load_cases(name):
        if where is not None and not where(case):
            continue
        marks = []
        if case["id"] in devs:
            marks.append(pytest.mark.xfail(reason=devs[case["id"]], strict=True))
        out.append(pytest.param(case, id=case["id"], marks=marks))
    return out
