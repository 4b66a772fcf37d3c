"""Wharf's shared core: the record, the batch format, matching, errors and the CLI root."""

__version__ = "0.1.0"
