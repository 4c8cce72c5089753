"""Getting data out of legacy systems: pure functions returning raw records plus a manifest."""

from connectors.delimited import read_delimited
from connectors.errors import ConnectorError, SourceError
from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from connectors.sql import read_table

__all__ = [
    "ConnectorError",
    "ControlProblem",
    "Controls",
    "Extraction",
    "Manifest",
    "SourceError",
    "file_checksum",
    "read_delimited",
    "read_table",
]
