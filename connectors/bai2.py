"""BAI2 cash-management statements: transactions as rows, account/group/file trailers reconciled.

BAI2 is comma-delimited, but its records end with ``/`` (several may share a physical line, and a text
field may run onto the next line or carry commas), and ``88`` records continue the record before them.
So a file is cut into logical records (vectorised: at line starts and after ``/`` where a two-digit
record code follows), continuations are merged into their parent, and each transaction (``16``)
becomes a row with its account (``03``) and group (``02``) context. Trailers are checked with
:mod:`connectors.controls`: account (``49``: total of the 03/16 amounts, records incl. 03..49), group
(``98``: total, accounts, records) and file (``99``: total, groups, records). Amounts are integers in
the currency's minor unit (``amountScale`` decimals). Only the 03 summaries, whose tuples vary in length
with their funds type, are walked in Python: one step per account, never per transaction.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from connectors.controls import manifest_figures, reconcile, scope
from connectors.fixed_width import REPLACEMENT, split_lines
from connectors.manifest import ControlProblem, Controls, Extraction, Manifest, file_checksum
from connectors.zoned import UNITS, implied_decimal_text, signed_digits, units
from schemas.contract import Bai2Source
from schemas.controls import ControlRecord, Figure, Span

CODES = ("01", "02", "03", "16", "49", "88", "98", "99")
START = r"^\s*[0-9]{2},"
TOTAL, SECOND, THIRD, AMOUNT = "_t1", "_t2", "_t3", "_amount"


def _controls() -> tuple[ControlRecord, ...]:
    total = Span(column=AMOUNT)

    def figure(name: str, at: str, kind: str, of: tuple[str, ...] = ()) -> Figure:
        return Figure(name, Span(column=at), kind, of=of, value=total if kind == "sum" else None)

    return (
        ControlRecord(
            "account",
            "49",
            "03",
            (figure("account_total", TOTAL, "sum", ("03", "16")), figure("account_records", SECOND, "count")),
        ),
        ControlRecord(
            "group",
            "98",
            "02",
            (
                figure("group_total", TOTAL, "sum", ("03", "16")),
                figure("group_accounts", SECOND, "count", ("03",)),
                figure("group_records", THIRD, "count"),
            ),
        ),
        ControlRecord(
            "file",
            "99",
            None,
            (
                figure("file_total", TOTAL, "sum", ("03", "16")),
                figure("file_groups", SECOND, "count", ("02",)),
                figure("file_records", THIRD, "count"),
            ),
        ),
    )


def read_bai2(path: Path, source: Bai2Source, columns: list[str], *, today: date | None = None) -> Extraction:
    """Read one BAI2 file into transaction records (String columns named as ``columns``) and its manifest.

    ``columns`` are BAI2 field names (``schemas.layout.BAI2_FIELDS``); ``today`` anchors the business
    date window (default: the local date).
    """
    checksum, size = file_checksum(path)
    logical = _logical_records(path.read_bytes(), source.encoding)
    merged = _merge_continuations(logical)
    merged = merged.with_columns(_amount=_amounts(merged))
    logical = logical.join(merged.select("_pid", AMOUNT), on="_pid", how="left").with_columns(
        pl.when(pl.col("_kind") != "88").then(pl.col(AMOUNT)).alias(AMOUNT)
    )
    logical = logical.with_columns(
        **{
            name: units(pl.col("_fields").list.get(i, null_on_oob=True), implied=True)
            for name, i in ((TOTAL, 1), (SECOND, 2), (THIRD, 3))
        }
    )
    scale = source.amount_scale

    def column_units(name: str) -> tuple[pl.Expr, int]:
        return pl.col(name).cast(UNITS), scale if name in (TOTAL, AMOUNT) else 0

    problems, figures = reconcile(
        logical, _controls(), source=path.name, text=_field, column_units=column_units
    )
    rows = _transactions(merged, scale)
    records = rows.select([pl.col(c) for c in columns] + ["_source_line", "_source_offset", "_record_error"])
    batch_id, business_date, fact_problems = _facts(merged, path, source, today or date.today())
    total = next((f for f in figures if f.name == "file_total"), None)
    count = next((f for f in figures if f.name == "file_records"), None)
    controls = Controls(
        declared_count=int(count.declared) if count and count.declared is not None else None,
        actual_count=int(count.actual) if count and count.actual is not None else None,
        declared_total=total.declared if total else None,
        actual_total=total.actual if total else None,
        problems=(*_structure(logical, path.name), *fact_problems, *problems),
        figures=manifest_figures(figures),
    )
    manifest = Manifest(path.name, checksum, size, batch_id, business_date, records.height, controls)
    return Extraction(records=records, manifest=manifest)


def _field(span: Span) -> pl.Expr:
    return pl.col("_fields").list.get(span.field or 0, null_on_oob=True)


def _logical_records(raw: bytes, encoding: str) -> pl.DataFrame:
    """Logical records in file order: ``_kind`` (record code), ``_fields``, physical line and exact offset."""
    lines = split_lines(raw, encoding).with_row_index("_source_line", offset=1)
    sep = next(c for c in "\x1e\x1f\x1d\x1c\x00" if c.encode() not in raw)
    width = (
        pl.col("_piece").str.len_bytes()
        if len("é".encode(encoding, "replace")) > 1
        else pl.col("_piece").str.len_chars()
    )
    pieces = (
        lines.with_columns(
            _piece=pl.col("_rec")
            .str.replace_all(r"(/[ \t]*)([0-9]{2},)", "${1}" + sep + "${2}")
            .str.split(sep)
        )
        .explode("_piece")
        .with_columns(_w=width.cast(pl.Int64))
        .with_columns(
            _source_offset=pl.col("_source_offset")
            + pl.col("_w").cum_sum().over("_source_line")
            - pl.col("_w")
        )
    )
    # A line that does not start with a record code continues the text of the record before it.
    pieces = pieces.with_columns(_rid=pl.col("_piece").str.contains(START).cast(pl.Int64).cum_sum())
    records = pieces.group_by("_rid", maintain_order=True).agg(
        pl.col("_piece").str.join(""), pl.col("_source_line").first(), pl.col("_source_offset").first()
    )
    body = pl.col("_piece").str.strip_chars().str.strip_suffix("/")
    records = records.with_columns(
        _kind=pl.when(pl.col("_piece").str.contains(START)).then(body.str.slice(0, 2)).otherwise(pl.lit("")),
        _fields=body.str.split(","),
        _undecodable=pl.col("_piece").str.contains(REPLACEMENT, literal=True),
    ).filter(pl.col("_piece").str.strip_chars() != "")
    return records.with_columns(_pid=(pl.col("_kind") != "88").cast(pl.Int64).cum_sum()).drop(
        "_rid", "_piece"
    )


def _merge_continuations(logical: pl.DataFrame) -> pl.DataFrame:
    """One row per parent record, its ``88`` continuations' fields appended (a field may be split)."""
    tail = pl.when(pl.col("_kind") == "88").then(pl.col("_fields").list.slice(1)).otherwise(pl.col("_fields"))
    return logical.group_by("_pid", maintain_order=True).agg(
        pl.col("_kind").first(),
        tail.list.explode(keep_nulls=False, empty_as_null=False).alias("_fields"),
        pl.col("_source_line").first(),
        pl.col("_source_offset").first(),
        pl.col("_undecodable").any(),
    )


def _funds_extra(fields: pl.Expr, at: int) -> pl.Expr:
    """How many fields a funds type at index ``at`` adds: S 3 amounts, V date+time, D a counted list."""
    funds = fields.list.get(at, null_on_oob=True).str.strip_chars().str.to_uppercase()
    n = fields.list.get(at + 1, null_on_oob=True).str.strip_chars().cast(pl.Int64, strict=False).fill_null(0)
    return (
        pl.when(funds == "S")
        .then(3)
        .when(funds == "V")
        .then(2)
        .when(funds == "D")
        .then(1 + 2 * n)
        .otherwise(0)
    ).cast(pl.Int64)


def _amounts(merged: pl.DataFrame) -> pl.Series:
    """Control amount of each parent record in units: a 16's amount, the sum of a 03's summary amounts."""
    amount = units(pl.col("_fields").list.get(2, null_on_oob=True))
    per16 = merged.select(pl.when(pl.col("_kind") == "16").then(amount)).to_series()
    summaries = merged.filter(pl.col("_kind") == "03").select("_pid", "_fields")
    sums = {pid: _summary_total(fields) for pid, fields in summaries.iter_rows()}  # one step per account
    per03 = merged.get_column("_pid").replace_strict(sums, default=None, return_dtype=UNITS)
    return per16.fill_null(per03).alias(AMOUNT).cast(UNITS)


def _summary_total(fields: list[str]) -> Decimal | None:
    """Sum of the amounts of a 03 record's (type, amount, count, funds type[, extras]) tuples; None if unreadable."""
    total, i = Decimal(0), 3
    while i < len(fields):
        amount = fields[i + 1].strip() if i + 1 < len(fields) else ""
        if amount:
            digits = amount.lstrip("+-")
            if not digits.isdigit() or not digits.isascii():
                return None
            total += Decimal(amount)
        funds = fields[i + 3].strip().upper() if i + 3 < len(fields) else ""
        extra = {"S": 3, "V": 2}.get(funds, 0)
        if funds == "D":
            n = fields[i + 4].strip() if i + 4 < len(fields) else ""
            extra = 1 + 2 * int(n) if n.isdigit() and n.isascii() else 1
        i += 4 + extra
    return total


def _transactions(merged: pl.DataFrame, scale: int) -> pl.DataFrame:
    """Transaction (16) rows with their file, group and account context; unknown records as error rows."""
    f = pl.col("_fields")

    def at(i: int | pl.Expr) -> pl.Expr:
        return f.list.get(i, null_on_oob=True).str.strip_chars()

    def context(code: str, i: int) -> pl.Expr:
        return pl.when(pl.col("_kind") == code).then(at(i)).forward_fill()

    extra = _funds_extra(f, 3)
    group_currency = context("02", 6)
    frame = merged.with_columns(
        sender_id=context("01", 1),
        receiver_id=context("01", 2),
        file_created=context("01", 3) + context("01", 4).fill_null(""),
        originator_id=context("02", 2),
        as_of_date=context("02", 4),
        as_of_time=context("02", 5),
        account_number=context("03", 1),
        currency=pl.when(pl.col("_kind") == "03")
        .then(pl.coalesce(pl.when(at(2) != "").then(at(2)), group_currency))
        .forward_fill(),
    )
    raw_amount = at(2)
    digits = signed_digits(raw_amount)
    error = (
        pl.when(pl.col("_undecodable"))
        .then(pl.lit("encoding"))
        .when(~pl.col("_kind").is_in(list(CODES)))
        .then(pl.lit("record_type"))
        .when(f.list.len() < 4)
        .then(pl.lit("field_count"))
    )
    rows = frame.filter((pl.col("_kind") == "16") | ~pl.col("_kind").is_in(list(CODES)))
    return rows.with_columns(
        type_code=at(1),
        amount=pl.when(digits.is_not_null()).then(implied_decimal_text(digits, scale)).otherwise(raw_amount),
        funds_type=at(3),
        bank_reference=at(4 + extra),
        customer_reference=at(5 + extra),
        text=f.list.slice(6 + extra).list.join(",").str.strip_chars(),
        _record_error=error.otherwise(pl.lit(None, pl.String)),
    ).with_columns(
        [
            pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
            for c in (
                "type_code",
                "amount",
                "funds_type",
                "bank_reference",
                "customer_reference",
                "text",
                "currency",
                "account_number",
            )
        ]  # fmt: skip
    )


def _structure(logical: pl.DataFrame, name: str) -> list[ControlProblem]:
    """File header first, file trailer last, and every transaction inside an account."""
    if logical.height == 0:
        return [ControlProblem("structure", f"{name}: the file is empty. Fix: ask the source to re-send it.")]
    problems = []
    first, last = logical.row(0, named=True), logical.row(logical.height - 1, named=True)
    if first["_kind"] != "01":
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {first['_source_line']}: no file header (01) at the start. "
                "Fix: the file is not a BAI2 file or is incomplete; ask the source to re-send it.",
                line=int(first["_source_line"]),
            )
        )
    if last["_kind"] != "99":
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {last['_source_line']}: no file trailer (99) at the end; the file is truncated. "
                "Fix: wait for the complete file or ask the source to re-send it.",
                line=int(last["_source_line"]),
            )
        )
    inside, _ = scope(pl.col("_kind"), "03", "49")
    stray = logical.filter((pl.col("_kind") == "16") & ~inside).get_column("_source_line")
    if stray.len():
        problems.append(
            ControlProblem(
                "structure",
                f"{name} line {stray[0]}: {stray.len()} transaction(s) outside an account (no 03 before them). "
                "Fix: the records are out of order; ask the source to re-send the file.",
                line=int(stray[0]),
            )
        )
    return problems


def _facts(
    merged: pl.DataFrame, path: Path, source: Bai2Source, today: date
) -> tuple[str, date | None, list[ControlProblem]]:
    """Batch id from the file header (sender, creation date/time, file id); business date = as-of date."""
    problems: list[ControlProblem] = []
    header = merged.filter(pl.col("_kind") == "01").head(1)
    batch_id = path.stem
    if header.height:
        fields = [x.strip() for x in header.get_column("_fields")[0].to_list()]
        batch_id = ".".join(fields[1:6]) if len(fields) >= 6 else batch_id
    group = merged.filter(pl.col("_kind") == "02").head(1)
    if group.height == 0:
        return batch_id, None, problems
    fields = group.get_column("_fields")[0].to_list()
    line = int(group.get_column("_source_line")[0])
    raw = fields[4].strip() if len(fields) > 4 else ""
    try:
        business_date = datetime.strptime(raw, "%y%m%d").date()
    except ValueError:
        problems.append(
            ControlProblem(
                "business_date",
                f"{path.name} line {line}, group header (02) field 4: as-of date is not YYMMDD. "
                "Fix: ask the source to re-send the file.",
                line=line,
            )
        )
        return batch_id, None, problems
    window = source.business_date_window_days
    if window is not None and abs((business_date - today).days) > window:
        problems.append(
            ControlProblem(
                "business_date",
                f"{path.name} line {line}: as-of date expected within {window} day(s) of {today.isoformat()}, "
                f"found {business_date.isoformat()}. Fix: confirm this old or future statement with the bank, or "
                "replay it deliberately after widening businessDateWindowDays.",
                line=line,
                expected=f"{today.isoformat()} ± {window} days",
                actual=business_date.isoformat(),
            )
        )
    return batch_id, business_date, problems
