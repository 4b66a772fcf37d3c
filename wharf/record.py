"""Re-export of the record type (it is defined in ``parsers`` so parsers need nothing of ours)."""

from parsers import LEVELS, Record

__all__ = ["LEVELS", "Record"]
