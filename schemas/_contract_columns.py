"""Reading a contract's properties: each column's type, classification, masks and rules.

:class:`PropertyReader` is the part of the contract reader (:mod:`schemas._contract_reader`) that turns
``schema[0].properties`` into :class:`~schemas.contract.Column` objects with their row rules, reporting
every problem with its YAML path so the error names the line.
"""

from __future__ import annotations

import re
from typing import Any

from schemas._yaml import PathKey, line_of
from schemas.contract import (
    CLASSIFICATIONS,
    COLUMN_NAME,
    DECIMAL_TYPE,
    LOGICAL_TYPES,
    MASKS,
    PII_TYPES,
    SEVERITIES,
    Column,
    Rule,
    is_mask,
)
from schemas.errors import ContractProblem


class PropertyReader:
    """A contract document's columns, read with every problem noted (see :meth:`problem`)."""

    def __init__(self, data: Any, lines: dict[PathKey, int]) -> None:
        self.data = data
        self.lines = lines
        self.problems: list[ContractProblem] = []

    def problem(self, where: PathKey, message: str, fix: str) -> None:
        self.problems.append(ContractProblem(line_of(self.lines, where), message, fix))

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
