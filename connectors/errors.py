"""Errors raised by ``connectors``.

    ConnectorError
    └── SourceError     the source cannot be read at all (missing table, unreadable file, bad settings)

A record that cannot be parsed is never an exception: it becomes a row with a ``_record_error``.
"""


class ConnectorError(Exception):
    """Base of every error raised by ``connectors``."""


class SourceError(ConnectorError):
    """The source cannot be read; the message names it and the fix, never a row's values."""
