"""Getting data out of legacy systems: pure functions returning raw records plus a manifest."""

from connectors.bai2 import read_bai2
from connectors.delimited import DelimitedFile, read_delimited
from connectors.errors import ConnectorError, SourceError
from connectors.fixed_width import read_fixed_width
from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from connectors.sql import read_table

__all__ = [
    "ConnectorError",
    "ControlProblem",
    "Controls",
    "DelimitedFile",
    "Extraction",
    "Manifest",
    "SourceError",
    "file_checksum",
    "read_bai2",
    "read_delimited",
    "read_fixed_width",
    "read_table",
]
