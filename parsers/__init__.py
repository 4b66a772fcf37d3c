"""Pure text → record parsers. No I/O, and no imports of other Wharf packages."""

from parsers._base import Parsed, Parser
from parsers._columns import FieldColumns
from parsers._record import LEVELS, Record
from parsers._registry import PARSER_NAMES, UnknownParser, get_parser

__all__ = [
    "LEVELS",
    "PARSER_NAMES",
    "FieldColumns",
    "Parsed",
    "Parser",
    "Record",
    "UnknownParser",
    "get_parser",
]
