"""The typing validation gave before its fast paths (schemas/parse.py at b562487), kept as the oracle.

Each column's raw text becomes its typed value and whether it is present, by the expressions validation
used until then, one expression per column. Tests compare the validator against this, so a faster
typing is proven to give the same values, not assumed to. One deliberate difference from b562487:
a trailing minus is always moved (as :func:`schemas.parse.parse_expr` did), where validation skipped
the move in a frame in which no raw value ended with '-', so ``'12,50- '`` failed its type check or
read as -12.50 depending on the other rows of its frame.
"""

from __future__ import annotations

import polars as pl

from schemas.contract import Column
from schemas.parse import TextFormat

EMPTY = r"^\s*$"


def typed_and_present(column: Column, fmt: TextFormat) -> tuple[pl.Expr, pl.Expr]:
    """The typed value of ``column`` and whether its text is present (not null, blank or an empty date)."""
    raw = pl.col(column.name)
    text = raw.str.strip_chars()
    if column.logical_type == "string":
        filled = ~raw.str.contains(EMPTY)
    else:
        filled = text.str.len_bytes() > 0
    number = _minus_first(_plain_separators(text, fmt)) if column.logical_type == "number" else text
    present = raw.is_not_null() & filled
    if column.logical_type in ("date", "timestamp") and fmt.empty_dates:
        present = present & ~text.is_in(list(fmt.empty_dates))
    return _typed(column, fmt, raw, text, number, filled), present


def _typed(
    column: Column, fmt: TextFormat, raw: pl.Expr, text: pl.Expr, number: pl.Expr, filled: pl.Expr
) -> pl.Expr:
    kind = column.logical_type
    if kind == "string":
        return pl.when(filled).then(raw)
    if kind == "integer":
        return pl.when(text.str.contains(r"^[+-]?\d+$")).then(text.cast(pl.Int64, strict=False))
    if kind == "number":
        if column.decimal is not None:
            precision, scale = column.decimal
            whole = max(precision - scale, 1)
            frac = rf"(\.\d{{1,{scale}}})?" if scale else ""
            pattern = rf"^[+-]?\d{{1,{whole}}}{frac}$"
            return pl.when(number.str.contains(pattern)).then(
                number.cast(pl.Decimal(precision, scale), strict=False)
            )
        return pl.when(number.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")).then(
            number.cast(pl.Float64, strict=False)
        )
    if kind == "boolean":
        lowered = text.str.to_lowercase()
        return (
            pl.when(lowered.is_in(["1", "true", "t", "y", "yes", "x"]))
            .then(True)
            .when(lowered.is_in(["0", "false", "f", "n", "no"]))
            .then(False)
        )
    if kind == "date":
        date_format = column.format or fmt.date_format
        return pl.when(~text.is_in(list(fmt.empty_dates))).then(
            text.str.strptime(pl.Date, date_format, strict=False, exact=True)
        )
    if kind == "timestamp":
        if fmt.timestamp_format is None:
            iso = text.str.replace(" ", "T")
            offset = iso.str.contains(r"([+-]\d{2}(:?\d{2})?|Z)$")
            aware = (
                iso.str.replace(r"Z$", "+00:00")
                .str.replace(r"([+-]\d{2})$", "${1}:00")
                .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
            )
            local = iso.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False)
            return (
                pl.when(offset)
                .then(aware)
                .otherwise(
                    local.dt.replace_time_zone(
                        fmt.timezone, ambiguous="earliest", non_existent="null"
                    ).dt.convert_time_zone("UTC")
                )
            )
        local = text.str.strptime(
            pl.Datetime("us"), column.format or fmt.timestamp_format, strict=False, exact=True
        )
        return (
            pl.when(~text.is_in(list(fmt.empty_dates)))
            .then(local)
            .dt.replace_time_zone(fmt.timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
        )
    raise ValueError(f"unsupported logical type {kind}")


def _plain_separators(text: pl.Expr, fmt: TextFormat) -> pl.Expr:
    if fmt.thousands_separator:
        sep = fmt.thousands_separator
        grouped = rf"^[+-]?\d{{1,3}}(?:{_literal(sep)}\d{{3}})+(?:{_literal(fmt.decimal_separator)}\d*)?-?$"
        misplaced = text.str.contains(_literal(sep)) & ~text.str.contains(grouped)
        text = pl.when(~misplaced).then(text.str.replace_all(sep, "", literal=True))
    if fmt.decimal_separator != ".":
        text = text.str.replace(fmt.decimal_separator, ".", literal=True)
    return text


def _literal(text: str) -> str:
    return "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def _minus_first(text: pl.Expr) -> pl.Expr:
    return pl.when(text.str.ends_with("-")).then(pl.lit("-") + text.str.strip_suffix("-")).otherwise(text)
