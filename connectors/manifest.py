"""What a connector reports about one delivery besides its rows: the extraction manifest."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(frozen=True)
class ControlProblem:
    """A reason the batch as a whole cannot be trusted; names file, line, column and fix.

    ``expected`` and ``actual`` hold a control figure as declared and as recomputed, where there is one.
    """

    check: str
    message: str
    line: int | None = None
    column: str | None = None
    expected: str | None = None
    actual: str | None = None


@dataclass(frozen=True)
class Controls:
    """Control figures a batch declares about itself (trailer) and what the reader actually counted."""

    declared_count: int | None = None
    actual_count: int | None = None
    declared_total: Decimal | None = None
    actual_total: Decimal | None = None
    problems: tuple[ControlProblem, ...] = ()
    figures: tuple[tuple[str, str | None, str | None], ...] = ()  # file-level (name, declared, actual)

    @property
    def reconciled(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Manifest:
    """One delivery: where it came from, its content checksum, batch facts and control figures."""

    source: str
    checksum: str
    size: int
    batch_id: str
    business_date: date | None
    rows_read: int
    controls: Controls = field(default_factory=Controls)
    undeclared_columns: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["business_date"] = self.business_date.isoformat() if self.business_date else None
        c = data["controls"]
        for key in ("declared_total", "actual_total"):
            c[key] = str(c[key]) if c[key] is not None else None
        return data


@dataclass
class Extraction:
    """Rows as the source wrote them (String columns named as the contract's) plus the manifest.

    Origin columns start with ``_``: ``_source_line`` (1-based physical line or row ordinal),
    ``_source_offset`` (byte offset, files only) and ``_record_error`` (why the reader could not
    split a record into fields, else null).
    """

    records: pl.DataFrame
    manifest: Manifest


def file_checksum(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
