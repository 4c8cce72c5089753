"""Typing raw source text: each contract column's string values become its declared type.

Every source hands validation the same thing: one String column per contract column, as the source
wrote it. Parsing is a polars expression per column; a value that is present but does not parse is
not an error here, it is a row-level ``type`` failure (see :mod:`schemas.validate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.contract import Column, Contract, FileSource

EMPTY = r"^\s*$"


@dataclass(frozen=True)
class TextFormat:
    """How a source writes numbers, dates and times."""

    decimal_separator: str = "."
    thousands_separator: str | None = None
    date_format: str = "%Y-%m-%d"
    timestamp_format: str | None = "%Y-%m-%dT%H:%M:%S"
    empty_dates: tuple[str, ...] = ()
    timezone: str = "UTC"

    @classmethod
    def of(cls, contract: Contract) -> TextFormat:
        src = contract.source
        if isinstance(src, FileSource):
            return cls(
                decimal_separator=src.decimal_separator,
                thousands_separator=src.thousands_separator,
                date_format=src.date_format,
                timestamp_format=src.timestamp_format,
                empty_dates=src.empty_dates,
                timezone=contract.source_timezone,
            )
        # SQL sources hand over ISO text (CAST AS TEXT); a space or a 'T' may separate date and time.
        return cls(timestamp_format=None, timezone=contract.source_timezone)


def dtype_of(column: Column) -> pl.DataType:
    """The polars type a column is stored as once certified."""
    if column.logical_type == "number":
        if column.decimal is not None:
            return pl.Decimal(*column.decimal)
        return pl.Float64()
    return {
        "string": pl.String(),
        "integer": pl.Int64(),
        "boolean": pl.Boolean(),
        "date": pl.Date(),
        "timestamp": pl.Datetime("us", "UTC"),
    }[column.logical_type]


def parse_expr(column: Column, fmt: TextFormat) -> pl.Expr:
    """The expression turning ``column``'s raw text into its declared type (null where it cannot)."""
    raw = pl.col(column.name)
    text = raw.str.strip_chars()
    number = normalise_number(text, fmt) if column.logical_type == "number" else text
    return _typed(column, fmt, raw, text, number, ~raw.str.contains(EMPTY))


def parse_steps(
    column: Column, fmt: TextFormat, typed: str, *, trailing_minus: bool = True
) -> list[dict[str, pl.Expr]]:
    """:func:`parse_expr` as successive ``with_columns`` steps, each intermediate text computed once.

    One expression would compute its shared parts (the stripped text, the normalised number) again for
    each use. The helper columns are named after ``typed``: ``{typed}__filled`` (not blank) and, for
    other than strings, ``{typed}__text`` (stripped); the last step adds ``typed`` itself.
    ``trailing_minus=False`` says no value ends with '-' (there is then no minus to move).
    """
    raw = pl.col(column.name)
    filled = f"{typed}__filled"
    if column.logical_type == "string":
        return [{filled: ~raw.str.contains(EMPTY)}, {typed: pl.when(pl.col(filled)).then(raw)}]
    text_name = f"{typed}__text"
    text = pl.col(text_name)
    steps: list[dict[str, pl.Expr]] = [{text_name: raw.str.strip_chars()}, {filled: text.str.len_bytes() > 0}]
    number = text
    if column.logical_type == "number":
        separated, number_name = f"{typed}__separated", f"{typed}__number"
        steps[1][separated] = plain_separators(text, fmt)
        number = pl.col(separated)
        if trailing_minus:
            steps.append({number_name: minus_first(number)})
            number = pl.col(number_name)
    steps.append({typed: _typed(column, fmt, raw, text, number, pl.col(filled))})
    return steps


def _typed(
    column: Column, fmt: TextFormat, raw: pl.Expr, text: pl.Expr, number: pl.Expr, filled: pl.Expr
) -> pl.Expr:
    """The typed value from the raw text, its stripped form, its normalised number and whether it is blank."""
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
            # SQL text: ISO with a space or 'T'; values with an explicit offset (PostgreSQL timestamptz
            # renders '+00') are instants, the rest are local times in the source's zone.
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
        else:
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


def normalise_number(text: pl.Expr, fmt: TextFormat) -> pl.Expr:
    """``1.234,56-`` (SAP style) to ``-1234.56``: drop grouping, use '.', move a trailing minus."""
    return minus_first(plain_separators(text, fmt))


def plain_separators(text: pl.Expr, fmt: TextFormat) -> pl.Expr:
    """The first step of :func:`normalise_number`: no grouping, '.' as the decimal separator.

    A thousands separator must group the whole part in threes (``1.234.567,8``); a value that misplaces
    it (``123,,456``, ``12.34``) is no number (null), so its row fails its type check rather than being
    read as another number.
    """
    if fmt.thousands_separator:
        sep = fmt.thousands_separator
        grouped = rf"^[+-]?\d{{1,3}}(?:{_literal(sep)}\d{{3}})+(?:{_literal(fmt.decimal_separator)}\d*)?-?$"
        misplaced = text.str.contains(_literal(sep)) & ~text.str.contains(grouped)
        text = pl.when(~misplaced).then(text.str.replace_all(sep, "", literal=True))
    if fmt.decimal_separator != ".":
        text = text.str.replace(fmt.decimal_separator, ".", literal=True)
    return text


def _literal(text: str) -> str:
    """``text`` matched literally in a polars (Rust) regular expression."""
    return "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def minus_first(text: pl.Expr) -> pl.Expr:
    """The second step of :func:`normalise_number`: a trailing minus moved to the front."""
    return pl.when(text.str.ends_with("-")).then(pl.lit("-") + text.str.strip_suffix("-")).otherwise(text)


def is_present(column: str) -> pl.Expr:
    """True where the raw text holds a value (not null, not blank)."""
    return pl.col(column).is_not_null() & ~pl.col(column).str.contains(EMPTY)
