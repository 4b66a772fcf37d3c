"""Parser lookup by name. Modules are imported on first use so a shipper loads only what it needs."""

from __future__ import annotations

import importlib
from typing import Any, Final

from parsers._base import Parser

# name -> "module:factory". A factory takes keyword options and returns a ``Parser``.
_FACTORIES: Final[dict[str, str]] = {
    "raw": "parsers.raw:RawParser",
    "json": "parsers.json:JsonParser",
    "logfmt": "parsers.logfmt:LogfmtParser",
    "syslog": "parsers.syslog:SyslogParser",
    "clf": "parsers.clf:ClfParser",
    "nginx": "parsers.nginx:NginxParser",
    "apache_error": "parsers.apache_error:ApacheErrorParser",
    "cri": "parsers.cri:CriParser",
    "docker": "parsers.docker:DockerParser",
    "regex": "parsers.regex:RegexParser",
    "auto": "parsers.auto:AutoParser",
}

PARSER_NAMES: Final = tuple(_FACTORIES)


class UnknownParser(ValueError):
    """The name is not one of ``PARSER_NAMES``."""


def get_parser(name: str, **options: Any) -> Parser:
    """Build the parser called ``name`` with its options (for example ``pattern=`` for regex)."""
    try:
        target = _FACTORIES[name]
    except KeyError:
        known = ", ".join(PARSER_NAMES)
        raise UnknownParser(f"unknown parser {name!r}: expected one of {known}") from None
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    parser: Parser = factory(**options)
    return parser
