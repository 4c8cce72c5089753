"""Data contracts: Open Data Contract Standard v3.1 documents, checked and turned into typed objects.

A contract is loaded in two passes. First the document is validated against the ODCS JSON schema
(``schemas/odcs/odcs-json-schema-v3.1.0.json``), so any ODCS tool can read it; then assay's own rules
are applied (dataset id, owners, types, source and control settings under ``customProperties``).
Every problem is reported with the file, the line and the fix, all problems at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema

from schemas._yaml import PathKey, YamlSyntaxError, line_of, load_with_lines
from schemas.controls import ControlRecord, LayoutError, Span
from schemas.errors import ContractError, ContractProblem
from schemas.layout import (
    BAI2_FIELDS,
    FieldLayout,
    HeaderValue,
    parse_bai2,
    parse_fixed_width,
    resolve_layouts,
)
from schemas.operations import Operations, parse_operations
from schemas.sources import Controls as Controls
from schemas.sources import DelimitedSource, SourceOptionError, parse_delimited
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


@cache
def _odcs_validator() -> jsonschema.Draft201909Validator:
    text = (Path(__file__).parent / "odcs" / "odcs-json-schema-v3.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    return jsonschema.Draft201909Validator(schema)


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
    builder = _ContractBuilder(path, data, lines)
    return builder.build()


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


class _ContractBuilder:
    def __init__(self, path: Path, data: Any, lines: dict[PathKey, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines
        self.problems: list[ContractProblem] = []

    def problem(self, where: PathKey, message: str, fix: str) -> None:
        self.problems.append(ContractProblem(line_of(self.lines, where), message, fix))

    def build(self) -> Contract:
        if not isinstance(self.data, dict):
            raise ContractError(
                self.path, [ContractProblem(1, "a contract is a YAML mapping", "see docs/contracts.md")]
            )
        self._check_odcs()
        try:
            contract = self._assay_rules()
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # A shape assay's rules cannot read; the ODCS problems above, if any, say where it is.
            contract = None
            if not self.problems:
                self.problem(
                    (), f"cannot be read as a contract ({type(exc).__name__}: {exc})", "see docs/contracts.md"
                )
        if self.problems or contract is None:
            unique = list(dict.fromkeys(self.problems))
            raise ContractError(self.path, sorted(unique, key=lambda p: p.line))
        return contract

    def _check_odcs(self) -> None:
        errors = sorted(_odcs_validator().iter_errors(self.data), key=lambda e: list(e.absolute_path))
        unexpected: set[PathKey] = set()
        for err in errors:
            where = tuple(err.absolute_path)
            loc = "/".join(str(p) for p in where) or "(top level)"
            keys = _named_keys(err)
            if err.validator == "additionalProperties" and keys:
                unexpected.update((*where, k) for k in keys)
                self.problem(
                    (*where, keys[0]),
                    f"ODCS v3.1: {loc}: {', '.join(map(repr, keys))} is not an ODCS field here",
                    "remove or rename it; assay's own settings go under customProperties",
                )
                continue
            if err.validator == "unevaluatedProperties" and keys:
                if all((*where, k) in unexpected for k in keys):
                    continue  # the same key, already reported as an additional property
                where = (*where, keys[0])
            self.problem(
                where, f"ODCS v3.1: {loc}: {_short(err.message)}", "make the document valid ODCS v3.1"
            )

    def _assay_rules(self) -> Contract | None:
        d = self.data
        cid = d.get("id")
        id_ok = isinstance(cid, str) and DATASET_ID.fullmatch(cid) is not None
        if not id_ok:
            self.problem(
                ("id",),
                f"dataset id {cid!r} is not lowercase 'domain.name' of [a-z0-9_]",
                "write e.g. id: erp.orders",
            )
        domain, name = str(cid).split(".") if id_ok else ("", "")
        if id_ok and d.get("domain", domain) != domain:
            self.problem(
                ("domain",),
                f"domain {d.get('domain')!r} differs from the id's domain {domain!r}",
                f"write domain: {domain}",
            )
        business, ops = self._owners()
        props = self._custom(d.get("customProperties"), ("customProperties",))
        source = self._source(
            props.get("source"), props_path=self._custom_path(("customProperties",), "source")
        )
        tz = props.get("sourceTimezone", "UTC")
        if not isinstance(tz, str) or not _valid_timezone(tz):
            self.problem(
                self._custom_path(("customProperties",), "sourceTimezone"),
                f"sourceTimezone {tz!r} is not an IANA time zone",
                "write e.g. Europe/Berlin or UTC",
            )
            tz = "UTC"
        quarantine = props.get("quarantine", {}) or {}
        max_ratio = quarantine.get("maxRatio", 0.05) if isinstance(quarantine, dict) else None
        if not isinstance(max_ratio, int | float) or not 0 <= max_ratio <= 1:
            self.problem(
                self._custom_path(("customProperties",), "quarantine"),
                f"quarantine.maxRatio {max_ratio!r} is not a ratio in [0, 1]",
                "write e.g. quarantine: {maxRatio: 0.05}",
            )
            max_ratio = 0.0
        operations, op_problems = parse_operations(props)
        for prop, message, fix in op_problems.items:
            self.problem(self._custom_path(("customProperties",), prop), message, fix)
        columns = self._columns()
        if source is not None and isinstance(source, DelimitedSource | FixedWidthSource | Bai2Source):
            source = self._check_controls(source, columns, self._custom_path(("customProperties",), "source"))
        if isinstance(source, SqlSource) and not any(c.primary_key for c in columns):
            self.problem(
                ("schema",),
                "a SQL source needs a primaryKey column to upsert by",
                "mark the key column with primaryKey: true",
            )
        if self.problems or not id_ok or source is None or business is None or ops is None:
            return None
        text = self.path.read_bytes()
        description = d.get("description") or {}
        return Contract(
            id=cid,
            domain=domain,
            name=name,
            version=str(d.get("version")),
            description=str(description.get("purpose", "")) if isinstance(description, dict) else "",
            business_owner=business,
            operations_owner=ops,
            columns=tuple(columns),
            source=source,
            source_timezone=tz,
            max_quarantine_ratio=float(max_ratio),
            path=self.path,
            checksum=hashlib.sha256(text).hexdigest(),
            tags=tuple(str(t) for t in d.get("tags") or ()),
            operations=operations,
        )

    def _owners(self) -> tuple[str | None, str | None]:
        team = self.data.get("team")
        members = team.get("members", []) if isinstance(team, dict) else []
        members = members if isinstance(members, list) else []
        business = ops = None
        for m in members:
            if not isinstance(m, dict):
                continue
            role = str(m.get("role", "")).strip().lower()
            if role in BUSINESS_ROLES and business is None:
                business = str(m.get("username"))
            elif role in OPERATIONS_ROLES and ops is None:
                ops = str(m.get("username"))
        for who, label, role in (
            (business, "business outcome owner", "businessOwner"),
            (ops, "operations owner", "operationsOwner"),
        ):
            if who is None:
                self.problem(
                    ("team", "members") if members else ("team",),
                    f"no {label}: a dataset without both owners is never certified",
                    f"add a team member with role: {role} (an email or team:name)",
                )
            elif not _valid_owner(who):
                self.problem(
                    ("team",),
                    f"{label} {who!r} is neither an email nor 'team:name'",
                    "write e.g. jane@example.com or team:erp-ops",
                )
        return business, ops

    def _custom(self, items: Any, where: PathKey) -> dict[str, Any]:
        if not isinstance(items, list):
            return {}
        return {i["property"]: i.get("value") for i in items if isinstance(i, dict) and "property" in i}

    def _custom_path(self, where: PathKey, prop: str) -> PathKey:
        """Where the value of customProperties entry ``prop`` under ``where`` is, for error lines."""
        items: Any = self.data
        for key in where:
            items = items.get(key) if isinstance(items, dict) else None
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and item.get("property") == prop:
                return (*where, i, "value")
        return where

    def _source(self, raw: Any, props_path: PathKey) -> Source | None:
        if not isinstance(raw, dict):
            self.problem(
                props_path,
                "no source: customProperties needs a 'source' entry",
                "add - property: source / value: {kind: delimited|sql, ...} (docs/contracts.md)",
            )
            return None
        kind = raw.get("kind")
        try:
            if kind == "delimited":
                return parse_delimited(raw)
            if kind == "fixed_width":
                return FixedWidthSource(kind="fixed_width", **parse_fixed_width(raw))
            if kind == "bai2":
                return Bai2Source(kind="bai2", **parse_bai2(raw))
            if kind == "sql":
                return SqlSource(kind="sql", connection=str(raw["connection"]), table=str(raw["table"]))
        except SourceOptionError as exc:
            fix = exc.fix or "see docs/sources.md"
            self.problem((*props_path, exc.option), f"source: {exc}", fix)
            return None
        except LayoutError as exc:
            self.problem(
                (*props_path, *exc.path), f"source: {exc}", "see docs/sources.md, 'Fixed-width files'"
            )
            return None
        except (LookupError, TypeError, ValueError) as exc:
            self.problem(props_path, f"source: {exc}", "see docs/contracts.md, 'Sources'")
            return None
        self.problem(
            props_path, f"source kind {kind!r} is not known", "use kind: delimited, fixed_width, bai2 or sql"
        )
        return None

    def _check_controls(self, source: FileSource, columns: list[Column], where: PathKey) -> FileSource | None:
        if isinstance(source, FixedWidthSource):
            layouts, problems = resolve_layouts(
                source.layouts, source.record_length, source.controls, columns
            )
            for path, message, fix in problems:
                self.problem(
                    (*where, *path), f"source: {message}", f"{fix} (docs/sources.md, 'Fixed-width files')"
                )
            return None if problems else dataclasses.replace(source, layouts=layouts)
        if isinstance(source, Bai2Source):
            unknown = [c.name for c in columns if c.name not in BAI2_FIELDS]
            if unknown:
                self.problem(
                    ("schema",),
                    f"column(s) {unknown} are not BAI2 transaction fields",
                    f"name each column as one of {', '.join(BAI2_FIELDS)}",
                )
            return source
        amount = source.controls.amount_column
        if amount is not None:
            match = [c for c in columns if c.name == amount]
            if not match or match[0].decimal is None:
                self.problem(
                    ("customProperties",),
                    f"control amount column {amount!r} is not a decimal column",
                    "name a column with physicalType decimal(p,s)",
                )
        return source

    def _columns(self) -> list[Column]:
        objects = self.data.get("schema") or []
        if len(objects) != 1:
            self.problem(
                ("schema",),
                f"expected exactly one schema object, found {len(objects)}",
                "one contract describes one dataset: keep one entry under schema",
            )
            return []
        props = objects[0].get("properties") or []
        columns: list[Column] = []
        seen: set[str] = set()
        for i, p in enumerate(props):
            col = self._column(p, ("schema", 0, "properties", i))
            if col is None:
                continue
            if col.name in seen:
                self.problem(
                    ("schema", 0, "properties", i),
                    f"column {col.name!r} declared twice",
                    "give each property a distinct name",
                )
            seen.add(col.name)
            columns.append(col)
        if not columns and not self.problems:
            self.problem(("schema", 0), "no properties", "declare the dataset's columns under properties")
        return columns

    def _column(self, p: dict[str, Any], where: PathKey) -> Column | None:
        name = p.get("name")
        if not isinstance(name, str) or not COLUMN_NAME.fullmatch(name):
            self.problem(
                (*where, "name"),
                f"column name {name!r} is not snake_case [a-z0-9_]",
                "map the source's name with physicalName and give a readable name, e.g. customer_tier",
            )
            return None
        if name.startswith("_"):
            self.problem(
                (*where, "name"),
                f"column name {name!r} starts with '_', which is reserved for assay's own columns "
                "(_batch_id, _source_line, ...)",
                f"name it {name.lstrip('_') or 'something_readable'!r} and keep the source's name as "
                f"physicalName: {name}",
            )
            return None
        logical = p.get("logicalType", "string")
        if logical not in LOGICAL_TYPES:
            self.problem(
                (*where, "logicalType"),
                f"column {name!r}: logicalType {logical!r} is not supported",
                f"use one of {', '.join(LOGICAL_TYPES)}",
            )
            return None
        physical = str(p.get("physicalType", "")).strip()
        decimal = None
        if logical == "number":
            m = DECIMAL_TYPE.fullmatch(physical)
            if physical and not m and physical.lower() not in ("double", "float"):
                self.problem(
                    (*where, "physicalType"),
                    f"column {name!r}: physicalType {physical!r} is not decimal(p,s) or double",
                    "money and quantities are decimal(precision,scale), e.g. decimal(12,2)",
                )
            if m:
                precision, scale = int(m.group(1)), int(m.group(2))
                if not 0 < precision <= 38 or scale > precision:
                    self.problem(
                        (*where, "physicalType"),
                        f"column {name!r}: {physical} is out of range",
                        "precision 1..38 and scale <= precision",
                    )
                decimal = (precision, scale)
        classification = str(p.get("classification", "internal")).lower()
        if classification not in CLASSIFICATIONS:
            self.problem(
                (*where, "classification"),
                f"column {name!r}: classification {classification!r} is not known",
                f"use one of {' < '.join(CLASSIFICATIONS)}",
            )
            classification = "restricted"
        custom = self._custom(p.get("customProperties"), (*where, "customProperties"))
        pii = custom.get("piiType")
        if pii is not None and pii not in PII_TYPES:
            self.problem(
                (*where, "customProperties"),
                f"column {name!r}: piiType {pii!r} is not known",
                f"use one of {', '.join(PII_TYPES)}",
            )
        if pii is not None and classification in ("public", "internal"):
            self.problem(
                (*where, "classification"),
                f"column {name!r} holds personal data ({pii}) but is classified {classification}",
                "classify personal data confidential or restricted",
            )
        mask = custom.get("mask")
        if mask is None and pii is not None:
            mask = "hash"
        if mask is not None and not is_mask(mask):
            self.problem(
                (*where, "customProperties"),
                f"column {name!r}: mask {mask!r} is not known",
                f"use one of {', '.join(MASKS)}, or prefix:N to keep N (1-12) characters",
            )
        identifier = custom.get("identifier", bool(p.get("primaryKey", False)))
        if not isinstance(identifier, bool):
            self.problem(
                self._custom_path((*where, "customProperties"), "identifier"),
                f"column {name!r}: identifier {identifier!r} is not true or false",
                "write identifier: true for a column that identifies a record, false to opt a key out",
            )
            identifier = True
        options = p.get("logicalTypeOptions") or {}
        rules = self._rules(name, logical, p, options, where)
        return Column(
            name=name,
            source_name=str(p.get("physicalName", name)),
            logical_type=logical,
            physical_type=physical or logical,
            required=bool(p.get("required", False)),
            unique=bool(p.get("unique", False)),
            primary_key=bool(p.get("primaryKey", False)),
            classification=classification,
            pii=pii,
            mask=mask,
            rules=tuple(rules),
            description=str(p.get("description", "")),
            decimal=decimal,
            format=_strftime(str(options["format"]))
            if logical in ("date", "timestamp") and isinstance(options, dict) and "format" in options
            else None,
            identifier=identifier,
        )

    def _rules(self, name: str, logical: str, p: dict[str, Any], options: Any, where: PathKey) -> list[Rule]:
        rules = [Rule(f"{name}_type", name, "type", {"type": logical})]
        if p.get("required") or p.get("primaryKey"):
            rules.append(Rule(f"{name}_not_null", name, "not_null", {}))
        if p.get("unique") or p.get("primaryKey"):
            rules.append(Rule(f"{name}_unique", name, "unique", {}))
        if isinstance(options, dict):
            for key, kind in (
                ("minimum", "ge"),
                ("exclusiveMinimum", "gt"),
                ("maximum", "le"),
                ("exclusiveMaximum", "lt"),
                ("minLength", "min_length"),
                ("maxLength", "max_length"),
                ("pattern", "pattern"),
            ):
                if key in options:
                    value = options[key]
                    if kind == "pattern":
                        try:
                            re.compile(str(value))
                            if not isinstance(value, str):
                                raise re.error("not a string")
                        except re.error as exc:
                            self.problem(
                                (*where, "logicalTypeOptions", key),
                                f"column {name!r}: pattern is not a valid regex ({exc})",
                                "fix the regular expression",
                            )
                            continue
                    elif kind != "pattern" and (
                        not isinstance(value, int | float) or isinstance(value, bool)
                    ):
                        self.problem(
                            (*where, "logicalTypeOptions", key),
                            f"column {name!r}: {key} {value!r} is not a number",
                            f"write e.g. {key}: 0",
                        )
                        continue
                    rules.append(Rule(f"{name}_{kind}", name, kind, {"value": value}))
        for j, q in enumerate(p.get("quality") or []):
            rule = self._quality_rule(name, q, (*where, "quality", j))
            if rule is not None:
                rules.append(rule)
        return rules

    def _quality_rule(self, name: str, q: dict[str, Any], where: PathKey) -> Rule | None:
        metric = q.get("metric")
        args = q.get("arguments") or {}
        severity = str(q.get("severity", "error")).lower()
        if severity not in SEVERITIES:
            self.problem(
                (*where, "severity"),
                f"severity {severity!r} is not error or warning",
                "write severity: error (blocks certification) or warning",
            )
            severity = "error"
        max_ratio = _tolerance(q)
        rule_name = str(q.get("name") or f"{name}_{metric}")
        if not re.fullmatch(r"[a-z0-9_]+", rule_name):
            self.problem(
                (*where, "name"),
                f"quality rule name {rule_name!r} is not [a-z0-9_]",
                "name it in snake_case; it becomes a Dagster check name",
            )
        description = str(q.get("description", ""))
        if metric == "invalidValues":
            if "validValues" in args:
                if not isinstance(args["validValues"], list):
                    self.problem(
                        (*where, "arguments", "validValues"),
                        f"validValues {args['validValues']!r} is not a list",
                        "write e.g. validValues: [EUR, USD]",
                    )
                    return None
                return Rule(
                    rule_name,
                    name,
                    "in_set",
                    {"values": list(args["validValues"])},
                    severity=severity,
                    max_ratio=max_ratio,
                    description=description,
                )
            if "pattern" in args:
                return Rule(
                    rule_name,
                    name,
                    "pattern",
                    {"value": str(args["pattern"])},
                    severity=severity,
                    max_ratio=max_ratio,
                    description=description,
                )
            self.problem(
                (*where, "arguments"),
                "invalidValues needs arguments.validValues or arguments.pattern",
                "add arguments: {validValues: [...]}",
            )
            return None
        if metric in ("nullValues", "missingValues"):
            return Rule(
                rule_name,
                name,
                "not_null",
                {},
                severity=severity,
                max_ratio=max_ratio,
                description=description,
            )
        if metric == "duplicateValues":
            return Rule(
                rule_name, name, "unique", {}, severity=severity, max_ratio=max_ratio, description=description
            )
        self.problem(
            (*where, "metric"),
            f"quality metric {metric!r} is not supported on a column",
            "use invalidValues, nullValues, missingValues or duplicateValues",
        )
        return None


def _tolerance(q: dict[str, Any]) -> float | None:
    """The share of failing rows a quality rule tolerates, from its ODCS operator and unit."""
    percent = str(q.get("unit", "")).lower() in ("percent", "%")
    for key in ("mustBe", "mustBeLessOrEqualTo", "mustBeLessThan"):
        if key in q and isinstance(q[key], int | float):
            value = float(q[key])
            if percent:
                return value / 100
            return 0.0 if value == 0 else None
    return None


# Date and time symbols as data owners (and CSVW's UAX #35 patterns) write them; one pass, longest first.
_FORMAT_TOKENS = {
    "YYYY": "%Y",
    "yyyy": "%Y",
    "MM": "%m",
    "M": "%m",  # month without a leading zero (polars also reads one digit for %m)
    "DD": "%d",
    "dd": "%d",
    "d": "%d",  # day without a leading zero
    "HH": "%H",
    "MI": "%M",
    "mm": "%M",
    "SS": "%S",
    "ss": "%S",
    # UAX #35 zone designators (Z, +01, +0100, +01:00): read, and a date keeps the day as written
    "XXXXX": "%#z",
    "XXXX": "%#z",
    "XXX": "%#z",
    "XX": "%#z",
    "X": "%#z",
}
_FORMAT_TOKEN = re.compile("|".join(sorted(_FORMAT_TOKENS, key=len, reverse=True)))


def _strftime(fmt: str) -> str:
    """Contract date formats are written as data owners know them (``YYYYMMDD``, ``DD.MM.YYYY``).

    ODCS's Java-style ``yyyy-MM-dd`` works too, and ``d.M.yyyy`` (no leading zeros); ``MM`` is always the
    month and ``MI`` or ``mm`` the minutes; ``X`` to ``XXXXX`` read a zone (``Z``, ``+01``, ``+0100``,
    ``+01:00``). A format holding ``%`` is taken as strftime already.
    """
    if "%" in fmt:
        return fmt
    return _FORMAT_TOKEN.sub(lambda m: _FORMAT_TOKENS[m.group()], fmt)


def _valid_owner(who: str) -> bool:
    return bool(re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", who) or re.fullmatch(r"team:[A-Za-z0-9_.-]+", who))


def _valid_timezone(tz: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _named_keys(err: jsonschema.ValidationError) -> list[str]:
    """The keys of the offending mapping that an additional/unevaluated-properties error names."""
    if not isinstance(err.instance, dict):
        return []
    return [k for k in err.instance if isinstance(k, str) and repr(k) in err.message]


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."
