"""Validation in flight: a contract compiled to a pandera (polars) schema, applied to every row.

pandera on a polars LazyFrame checks only the schema, and ``drop_invalid_rows`` drops rows silently;
neither is acceptable here. So the contract compiles to a pandera ``DataFrameSchema`` (used as is for
the schema-level audit of a staged version), and each of its checks is also evaluated row by row as
a polars expression. Every row ends in exactly one of two frames: ``valid`` (typed, ready to publish)
or ``quarantine`` (the source text as it came, with every reason: column and check).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pandera.polars as pa
import polars as pl

from schemas.contract import Column, Contract, Rule
from schemas.errors import ValidationError
from schemas.frame_typing import FrameTyping, present_name, typed_name
from schemas.parse import TextFormat, dtype_of

RECORD = "_record"
RECORD_ERROR = "_record_error"
REASON = pl.Struct({"column": pl.String, "check": pl.String})


@dataclass(frozen=True)
class CompiledContract:
    """A contract's pandera schema plus, for each row rule, the pandera check that implements it."""

    contract: Contract
    schema: pa.DataFrameSchema
    checks: tuple[tuple[Rule, pa.Check | None], ...]
    # The rule expressions validating each kind of frame (with record errors or not), built by the
    # first Validator and kept for the others (validate() called chunk by chunk builds them once).
    # ``unique`` is judged within the frame there; a Validator given a batch's duplicates swaps in its
    # own, so no batch's data is kept here.
    plans: dict[bool, _Plan] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Validation:
    """The outcome of validating one batch: every input row is in exactly one of the two frames."""

    valid: pl.DataFrame
    quarantine: pl.DataFrame
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.valid.height + self.quarantine.height

    @property
    def valid_rows(self) -> int:
        return self.valid.height

    @property
    def quarantined_rows(self) -> int:
        return self.quarantine.height


def compile_contract(contract: Contract) -> CompiledContract:
    """Compile a contract to a pandera polars schema; row rules keep a link to their pandera check."""
    columns: dict[str, pa.Column] = {}
    checks: list[tuple[Rule, pa.Check | None]] = []
    for col in contract.columns:
        col_checks = []
        for rule in col.rules:
            check = _pandera_check(rule, col)
            checks.append((rule, check))
            if check is not None:
                col_checks.append(check)
        columns[col.name] = pa.Column(
            dtype_of(col),
            checks=col_checks,
            nullable=not (col.required or col.primary_key),
            unique=col.unique or col.primary_key,
            description=col.description or None,
            metadata={"classification": col.classification, "pii": col.pii},
        )
    schema = pa.DataFrameSchema(columns, name=contract.id, strict="filter")
    return CompiledContract(contract, schema, tuple(checks))


def _pandera_check(rule: Rule, col: Column) -> pa.Check | None:
    value = rule.args.get("value")
    if rule.kind in ("ge", "gt", "le", "lt") and col.decimal is not None:
        value = Decimal(str(value))
    match rule.kind:
        case "ge":
            return pa.Check.ge(value)
        case "gt":
            return pa.Check.gt(value)
        case "le":
            return pa.Check.le(value)
        case "lt":
            return pa.Check.lt(value)
        case "in_set":
            return pa.Check.isin(rule.args["values"])
        case "pattern":
            return pa.Check.str_contains(str(value))
        case "min_length":
            return pa.Check.str_length(min_value=value)
        case "max_length":
            return pa.Check.str_length(max_value=value)
    return None  # type, not_null and unique are properties of the pandera Column itself


def _check_passes(check: pa.Check, value: pl.Expr) -> pl.Expr:
    """The row-level form of a pandera built-in check, read from its name and statistics."""
    s: dict[str, Any] = check.statistics or {}
    match check.name:
        case "greater_than_or_equal_to":
            return value >= s["min_value"]
        case "greater_than":
            return value > s["min_value"]
        case "less_than_or_equal_to":
            return value <= s["max_value"]
        case "less_than":
            return value < s["max_value"]
        case "isin":
            return value.is_in(list(s["allowed_values"]))
        case "str_contains":
            pattern = s["pattern"]
            return value.str.contains(pattern)
        case "str_length":
            length = value.str.len_chars()
            ok = pl.lit(True)
            if s.get("min_value") is not None:
                ok = ok & (length >= s["min_value"])
            if s.get("max_value") is not None:
                ok = ok & (length <= s["max_value"])
            return ok
    raise ValueError(f"no row-level form for pandera check {check.name!r}")


def _rule_fails(
    rule: Rule,
    check: pa.Check | None,
    col: Column,
    duplicated: Mapping[str, pl.Series] | None = None,
) -> pl.Expr:
    """True where a row breaks ``rule``. A missing value breaks only ``not_null``.

    ``unique`` is judged within the frame unless ``duplicated`` gives, per column, the values that occur
    more than once in the whole batch (which a frame holding one chunk of it cannot see).
    """
    typed = pl.col(typed_name(col.name))
    present = pl.col(present_name(col.name))
    if rule.kind == "type":
        return present & typed.is_null()
    if rule.kind == "not_null":
        return ~present
    if rule.kind == "unique":
        if duplicated is None:
            return typed.is_not_null() & typed.is_duplicated()
        if col.name not in duplicated:
            raise ValueError(f"no batch-wide duplicates given for unique column {col.name!r}")
        return typed.is_not_null() & typed.is_in(duplicated[col.name].implode())
    if check is None:
        raise ValueError(f"rule {rule.name} has no check")
    return typed.is_not_null() & ~_check_passes(check, typed)


def _fail(i: int) -> str:
    return f"__fail__{i}"


def validate(
    compiled: CompiledContract,
    raw: pl.DataFrame,
    fmt: TextFormat,
    *,
    duplicated: Mapping[str, pl.Series] | None = None,
) -> Validation:
    """Type and check every row of ``raw`` (String columns named as the contract's columns).

    Columns starting with ``_`` are origin data (batch, file, line, offset) and pass through to both
    frames. A non-null ``_record_error`` marks a record the reader could not split into fields (e.g.
    wrong field count): it is quarantined with that reason and no field-level checks. A batch validated
    chunk by chunk passes ``duplicated`` (see :class:`schemas.chunked.DuplicateKeys`), so ``unique``
    gives the reasons it would give on the whole batch.
    """
    return Validator(compiled, fmt, duplicated=duplicated)(raw)


class Validator:
    """:func:`validate` for many frames of one batch: the typing and rule expressions are built once.

    Building them takes a few milliseconds of Python per frame, holding the interpreter lock that the
    pipeline's other threads need; they are kept with the compiled contract, so a new Validator (each
    :func:`validate` call) reuses them too. :attr:`typing` types each frame (see
    :class:`schemas.frame_typing.FrameTyping`).
    """

    def __init__(
        self,
        compiled: CompiledContract,
        fmt: TextFormat,
        *,
        duplicated: Mapping[str, pl.Series] | None = None,
    ) -> None:
        self.compiled = compiled
        self.fmt = fmt
        self.duplicated = duplicated
        self.typing = FrameTyping(compiled.contract.columns, fmt)
        self._plans: dict[bool, _Plan] = {}

    def __call__(self, raw: pl.DataFrame) -> Validation:
        contract = self.compiled.contract
        missing = [c.name for c in contract.columns if c.name not in raw.columns]
        if missing:
            raise ValidationError(
                f"{contract.id}: the batch lacks declared column(s) {missing}. "
                "Fix: map them with physicalName in the contract, or remove them from it."
            )
        origin = [c for c in raw.columns if c.startswith("_") and c != RECORD_ERROR]
        has_error = RECORD_ERROR in raw.columns
        plan = self._plans.get(has_error)
        if plan is None:
            plan = self._plans[has_error] = self._plan(has_error)
        rows = [*(c.name for c in contract.columns), *origin, *([RECORD_ERROR] if has_error else [])]
        checked = (
            self.typing(raw, rows)
            .lazy()
            .with_columns(plan.fails)
            .with_columns(plan.bad)
            .select(
                [
                    *rows,
                    *(typed_name(c.name) for c in contract.columns),
                    *(_fail(i) for i in range(len(plan.fails))),
                    "__bad__",
                ]
            )
            .collect()
        )
        bad = checked.get_column("__bad__")
        valid = (
            checked.lazy()
            .filter(~pl.col("__bad__"))
            .select(plan.typed + [pl.col(c) for c in origin])
            .collect()
        )
        # The few quarantined rows are taken out first; their reasons are built from them alone.
        failed = checked.filter(bad)
        quarantine = failed.select([pl.col(c.name) for c in contract.columns] + [pl.col(c) for c in origin])
        quarantine = quarantine.with_columns(_reasons(plan.catalogue, failed))
        counts = checked.select(plan.counts)
        failures = {name: int(counts[name][0]) for name in counts.columns}
        if has_error:
            failures[RECORD] = int(checked.select(pl.col(RECORD_ERROR).is_not_null().sum()).item())
        return Validation(valid=valid, quarantine=quarantine, failures=failures)

    def _plan(self, has_error: bool) -> _Plan:
        """The compiled contract's plan for this kind of frame, with this batch's ``unique`` checks."""
        compiled = self.compiled
        shared = compiled.plans.get(has_error)
        if shared is None:
            shared = compiled.plans[has_error] = _plan(compiled, has_error)
        if self.duplicated is None:
            return shared
        cols = {c.name: c for c in compiled.contract.columns}
        fails = [
            (_sound(has_error) & _rule_fails(rule, check, cols[rule.column], self.duplicated)).alias(_fail(i))
            if rule.kind == "unique"
            else fail
            for i, ((rule, check), fail) in enumerate(zip(compiled.checks, shared.fails, strict=True))
        ]
        return replace(shared, fails=fails)


def _sound(has_error: bool) -> pl.Expr:
    """True on a row whose record was read (its fields are checked)."""
    return (pl.col(RECORD_ERROR) if has_error else pl.lit(None, pl.String)).is_null()


def _plan(compiled: CompiledContract, has_error: bool) -> _Plan:
    """The rule expressions for a kind of frame, ``unique`` judged within the frame."""
    contract = compiled.contract
    cols = {c.name: c for c in contract.columns}
    sound = _sound(has_error)
    fails = [
        (sound & _rule_fails(rule, check, cols[rule.column])).alias(_fail(i))
        for i, (rule, check) in enumerate(compiled.checks)
    ]
    return _Plan(
        fails=fails,
        bad=(
            ~sound | pl.any_horizontal([pl.col(_fail(i)) for i in range(len(fails))] or [pl.lit(False)])
        ).alias("__bad__"),
        typed=[pl.col(typed_name(c.name)).cast(dtype_of(c)).alias(c.name) for c in contract.columns],
        counts=[pl.col(_fail(i)).sum().alias(rule.name) for i, (rule, _) in enumerate(compiled.checks)],
        catalogue=_catalogue(compiled),
    )


@dataclass(frozen=True)
class _Plan:
    """The rule expressions validating one kind of frame (with or without record errors)."""

    fails: list[pl.Expr]
    bad: pl.Expr
    typed: list[pl.Expr]
    counts: list[pl.Expr]
    catalogue: pl.DataFrame  # see _catalogue


def _catalogue(compiled: CompiledContract) -> pl.DataFrame:
    """Each rule's failure flag with its place in the reasons and the reason it gives."""
    names = [_fail(i) for i in range(len(compiled.checks))]
    return pl.DataFrame(
        {
            "flag": names,
            "order": range(1, len(names) + 1),
            "column": [rule.column for rule, _ in compiled.checks],
            "check": [reason_check(rule) for rule, _ in compiled.checks],
        },
        schema={"flag": pl.String, "order": pl.Int64, "column": pl.String, "check": pl.String},
    )


def _reasons(catalogue: pl.DataFrame, failed: pl.DataFrame) -> pl.Series:
    """Per quarantined row, every reason in rule order (an unreadable record's own first).

    Built from the rows' failure flags (``catalogue``: :func:`_catalogue`) in long form, as one query:
    one ``when/then`` per rule would cost about 3 ms a chunk however few the rows, and so would the
    long form taken step by step, each step its own query.
    """
    rows = failed.lazy().select(catalogue.get_column("flag").to_list()).with_row_index("row")
    long = (
        rows.unpivot(index="row", variable_name="flag")
        .filter(pl.col("value"))
        .join(catalogue.lazy(), on="flag")
        .select("row", "order", "column", "check")
    )
    if RECORD_ERROR in failed.columns:
        unreadable = (
            failed.lazy()
            .select(pl.col(RECORD_ERROR).alias("check"))
            .with_row_index("row")
            .filter(pl.col("check").is_not_null())
            .select("row", order=pl.lit(0, pl.Int64), column=pl.lit(RECORD), check="check")
        )
        long = pl.concat([unreadable, long])
    listed = (
        long.sort("row", "order")
        .group_by("row", maintain_order=True)
        .agg(reasons=pl.struct("column", "check").cast(REASON))
        .collect()
    )
    if listed.height == failed.height:  # each row has a reason (it is quarantined for one), in row order
        return listed.get_column("reasons")
    return (
        pl.DataFrame({"row": pl.int_range(failed.height, dtype=pl.UInt32, eager=True)})
        .join(listed, on="row", how="left", maintain_order="left")
        .get_column("reasons")
        .fill_null(pl.lit([], pl.List(REASON)))
        .cast(pl.List(REASON))
    )


def reason_check(rule: Rule) -> str:
    """Reasons name built-in rules by kind (``not_null``, ``type``…) and owners' quality rules by name."""
    return rule.kind if rule.name == f"{rule.column}_{rule.kind}" else rule.name


def schema_problems(compiled: CompiledContract, frame: pl.LazyFrame) -> list[str]:
    """Schema-level differences between a staged frame and the contract (pandera, no row data read)."""
    try:
        compiled.schema.validate(frame.select([c.name for c in compiled.contract.columns]))
    except pa.errors.SchemaError as exc:
        return [_without_values(str(exc))]
    except pl.exceptions.ColumnNotFoundError as exc:
        return [f"column missing from the staged version: {str(exc).splitlines()[0]}"]
    return []


def _without_values(message: str) -> str:
    """pandera appends failure-case examples to some messages; they may hold classified values."""
    return message.split("failure case examples")[0].strip()
