"""Data contracts: Open Data Contract Standard v3.1 documents, checked and turned into typed objects.

A contract is loaded in two passes. First the document is validated against the ODCS JSON schema
(``schemas/odcs/odcs-json-schema-v3.1.0.json``), so any ODCS tool can read it; then assay's own rules
are applied (dataset id, owners, types, source and control settings under ``customProperties``).
Every problem is reported with the file, the line and the fix, all problems at once.

This module holds what a contract is (:class:`Contract`, :class:`Column`, :class:`Rule`, the sources) and
the two ways to load one; the reading itself lives in :mod:`schemas._contract_reader` (the document,
owners and source) and :mod:`schemas._contract_columns` (each column and its rules).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from schemas._yaml import YamlSyntaxError, load_with_lines
from schemas.controls import ControlRecord, Span
from schemas.errors import ContractError, ContractProblem
from schemas.layout import FieldLayout, HeaderValue
from schemas.operations import Operations
from schemas.sources import Controls as Controls
from schemas.sources import DelimitedSource
from schemas.sources import RecordTypes as RecordTypes

# domain.name; bounded so every id fits the catalog and audit columns (String(200)).
DATASET_ID = re.compile(r"^(?=.{3,150}$)[a-z0-9_]+\.[a-z0-9_]+$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
DECIMAL_TYPE = re.compile(r"^decimal\((\d+),\s*(\d+)\)$", re.IGNORECASE)
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
PII_TYPES = (
    "email",
    "phone",
    "person_name",
    "national_id",
    "iban",
    "payment_card",
    "address",
    "date_of_birth",
    "ip_address",
    "free_text",
)
MASKS = ("redact", "hash", "partial", "null", "month", "prefix", "none")
# ``prefix`` keeps a postcode's outward code; ``prefix:N`` keeps at most N characters (see governance.masks).
PREFIX_MASK = re.compile(r"^prefix(?::([1-9]|1[0-2]))?$")
LOGICAL_TYPES = ("string", "integer", "number", "boolean", "date", "timestamp")
BUSINESS_ROLES = ("businessowner", "business_owner", "business outcome owner", "owner")
OPERATIONS_ROLES = ("operationsowner", "operations_owner", "operations owner", "ops")
SEVERITIES = ("error", "warning")

Classification = Literal["public", "internal", "confidential", "restricted"]


def is_mask(name: Any) -> bool:
    """A mask a contract may name: one of :data:`MASKS`, or ``prefix:N`` (N = 1..12 characters kept)."""
    return isinstance(name, str) and (name in MASKS or PREFIX_MASK.fullmatch(name) is not None)


def classification_rank(level: str) -> int:
    """``public < internal < confidential < restricted``."""
    return CLASSIFICATIONS.index(level)


@dataclass(frozen=True)
class Rule:
    """One row-level rule of a column, from ``quality[]`` or the property's own constraints.

    ``kind`` is one of ``not_null``, ``unique``, ``type``, ``in_set``, ``pattern``, ``ge``, ``gt``, ``le``,
    ``lt``, ``between``, ``min_length``, ``max_length``. Rows breaking the rule are quarantined; the batch
    fails the rule's check when the share of such rows exceeds ``max_ratio`` (ERROR severity blocks
    certification, WARN does not).
    """

    name: str
    column: str
    kind: str
    args: dict[str, Any]
    severity: str = "error"
    max_ratio: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Column:
    name: str
    source_name: str
    logical_type: str
    physical_type: str
    required: bool
    unique: bool
    primary_key: bool
    classification: str
    pii: str | None
    mask: str | None
    rules: tuple[Rule, ...]
    description: str = ""
    decimal: tuple[int, int] | None = None
    format: str | None = None
    # Identifies a record (masked for interns): primaryKey, unless customProperty identifier says otherwise.
    identifier: bool = False


@dataclass(frozen=True)
class SqlSource:
    kind: Literal["sql"]
    connection: str
    table: str


@dataclass(frozen=True)
class FixedWidthSource:
    """A fixed-width batch export: records sliced by position, per record type (see ``schemas.layout``).

    ``records`` maps record type codes to roles (file_header, batch_header, detail, other, batch_trailer,
    file_trailer); ``layouts`` holds the detail fields per code ('' = every detail type).
    """

    kind: Literal["fixed_width"]
    path: str
    pattern: str
    encoding: str = "utf-8"
    record_length: int | None = None
    line_breaks: str = "auto"
    length_check: str = "pad"
    record_type: Span | None = None
    records: tuple[tuple[str, str], ...] = ()
    layouts: tuple[tuple[str, tuple[FieldLayout, ...]], ...] = ()
    padding: str | None = None
    controls: tuple[ControlRecord, ...] = ()
    batch_id: HeaderValue | None = None
    business_date: HeaderValue | None = None
    business_date_window_days: int | None = None
    date_format: str = "%Y%m%d"
    timestamp_format: str = "%Y%m%d%H%M%S"
    empty_dates: tuple[str, ...] = ("00000000", "000000")
    decimal_separator: str = "."
    thousands_separator: str | None = None


@dataclass(frozen=True)
class Bai2Source:
    """BAI2 cash-management statements: transactions (16) with their account, group and file trailers."""

    kind: Literal["bai2"]
    path: str
    pattern: str
    encoding: str = "utf-8"
    amount_scale: int = 2
    business_date_window_days: int | None = None
    date_format: str = "%y%m%d"
    timestamp_format: str = "%y%m%d%H%M"
    empty_dates: tuple[str, ...] = ()
    decimal_separator: str = "."
    thousands_separator: str | None = None


FileSource = DelimitedSource | FixedWidthSource | Bai2Source
Source = FileSource | SqlSource


def has_control_records(source: Source) -> bool:
    """Whether batches of this source carry control records that must reconcile (a blocking check)."""
    if isinstance(source, DelimitedSource):  # a header row of column names must name every column
        return source.record_types is not None or source.header_names
    return isinstance(source, Bai2Source) or bool(
        isinstance(source, FixedWidthSource) and (source.controls or source.records)
    )


@dataclass(frozen=True)
class Contract:
    """A dataset's contract, as assay uses it. Build with :func:`load_contract`."""

    id: str
    domain: str
    name: str
    version: str
    description: str
    business_owner: str
    operations_owner: str
    columns: tuple[Column, ...]
    source: Source
    source_timezone: str
    max_quarantine_ratio: float
    path: Path
    checksum: str
    tags: tuple[str, ...] = ()
    operations: Operations = field(default_factory=Operations)

    @property
    def owners(self) -> list[str]:
        return [self.business_owner, self.operations_owner]

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def rules(self) -> list[Rule]:
        return [r for c in self.columns for r in c.rules]


def load_contract(path: str | Path) -> Contract:
    """Load and check one contract file; raise :class:`ContractError` listing every problem."""
    path = Path(path)
    try:
        data, lines = load_with_lines(path)
    except YamlSyntaxError as exc:
        raise ContractError(
            path, [ContractProblem(exc.line, exc.problem or str(exc), "fix the syntax at that position")]
        ) from exc
    except OSError as exc:
        raise ContractError(
            path, [ContractProblem(1, f"cannot read: {exc.strerror}", "check the path")]
        ) from exc
    from schemas._contract_reader import ContractReader  # it builds this module's types: imported here

    return ContractReader(path, data, lines).build()


def load_contracts(folder: str | Path) -> list[Contract]:
    """Every ``*.yaml`` contract in ``folder``, sorted by id; all files' problems reported together."""
    folder = Path(folder)
    contracts: list[Contract] = []
    errors: list[ContractError] = []
    for file in sorted(folder.glob("*.yaml")):
        try:
            contracts.append(load_contract(file))
        except ContractError as exc:
            errors.append(exc)
    if errors:
        raise ContractError.combine(errors)
    ids = [c.id for c in contracts]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ContractError(
            folder, [ContractProblem(1, f"dataset id(s) {dupes} defined twice", "one file per dataset")]
        )
    return sorted(contracts, key=lambda c: c.id)
