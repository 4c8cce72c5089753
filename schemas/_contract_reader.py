"""Reading a contract document into a :class:`~schemas.contract.Contract`, every problem at once.

Two passes: the document against the ODCS v3.1 JSON schema, then assay's own rules (dataset id,
owners, source and control settings under ``customProperties``; the columns in
:mod:`schemas._contract_columns`). Each problem keeps its YAML path, so the error names the line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from schemas._contract_columns import PropertyReader
from schemas._yaml import PathKey
from schemas.contract import (
    BUSINESS_ROLES,
    DATASET_ID,
    OPERATIONS_ROLES,
    Bai2Source,
    Column,
    Contract,
    FileSource,
    FixedWidthSource,
    Source,
    SqlSource,
)
from schemas.controls import LayoutError
from schemas.errors import ContractError, ContractProblem
from schemas.layout import BAI2_FIELDS, parse_bai2, parse_fixed_width, resolve_layouts
from schemas.operations import parse_operations
from schemas.sources import DelimitedSource, SourceOptionError, parse_delimited


class ContractReader(PropertyReader):
    """One contract document (parsed YAML and the line of each path) read into a :class:`Contract`."""

    def __init__(self, path: Path, data: Any, lines: dict[PathKey, int]) -> None:
        super().__init__(data, lines)
        self.path = path

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


@cache
def _odcs_validator() -> jsonschema.Draft201909Validator:
    text = (Path(__file__).parent / "odcs" / "odcs-json-schema-v3.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    return jsonschema.Draft201909Validator(schema)


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
