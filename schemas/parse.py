"""Typing raw source text: each contract column's string values become its declared type.

Every source hands validation the same thing: one String column per contract column, as the source
wrote it. Parsing is a polars expression per column; a value that is present but does not parse is
not an error here, it is a row-level ``type`` failure (see :mod:`schemas.validate`).

:func:`parse_expr` is what typing means; :func:`exact_typing` is the same as steps. Validation types
its frames with cheaper steps that give the same values (:mod:`schemas.frame_typing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.contract import Column, Contract, FileSource

EMPTY = r"^\s*$"
INTEGER = r"^[+-]?\d+$"


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


@dataclass(frozen=True)
class Typing:
    """Successive ``with_columns`` steps typing one column of a frame.

    The steps add ``{typed}``, the value, and ``{typed}__present``: the text holds a value (not null,
    not blank, not an empty date). Where :attr:`local` is true, ``{typed}`` is a file timestamp still
    in the source's local time (see :func:`localize`). :attr:`suspect` names a Boolean column the
    steps add, true on each row they may type otherwise than :func:`parse_expr`: those rows must be
    typed again with :func:`exact_typing`. The steps' helper columns start with ``{typed}__``.
    """

    steps: list[dict[str, pl.Expr]]
    local: bool = False
    suspect: str | None = None


def exact_typing(column: Column, fmt: TextFormat, typed: str) -> Typing:
    """:func:`parse_expr` as steps, each intermediate text (stripped, normalised number) computed once."""
    raw = pl.col(column.name)
    filled, present = f"{typed}__filled", f"{typed}__present"
    if column.logical_type == "string":
        return Typing(
            [
                {filled: ~raw.str.contains(EMPTY)},
                {typed: pl.when(pl.col(filled)).then(raw), present: raw.is_not_null() & pl.col(filled)},
            ]
        )
    text_name = f"{typed}__text"
    text = pl.col(text_name)
    steps: list[dict[str, pl.Expr]] = [{text_name: raw.str.strip_chars()}, {filled: text.str.len_bytes() > 0}]
    number = text
    if column.logical_type == "number":
        separated, number_name = f"{typed}__separated", f"{typed}__number"
        steps[1][separated] = plain_separators(text, fmt)
        steps.append({number_name: minus_first(pl.col(separated))})
        number = pl.col(number_name)
    shown = raw.is_not_null() & pl.col(filled)
    if column.logical_type in ("date", "timestamp") and fmt.empty_dates:
        shown = shown & ~text.is_in(list(fmt.empty_dates))
    local = _file_timestamp(column, fmt)
    value = _typed(column, fmt, raw, text, number, pl.col(filled), localized=not local)
    steps.append({typed: value, present: shown})
    return Typing(steps, local=local)


def _file_timestamp(column: Column, fmt: TextFormat) -> bool:
    return column.logical_type == "timestamp" and fmt.timestamp_format is not None


def localize(local: pl.Expr, fmt: TextFormat) -> pl.Expr:
    """Local times in the source's zone as UTC instants (the earlier of a repeated hour; null for one
    that never existed)."""
    return local.dt.replace_time_zone(
        fmt.timezone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def _typed(
    column: Column,
    fmt: TextFormat,
    raw: pl.Expr,
    text: pl.Expr,
    number: pl.Expr,
    filled: pl.Expr,
    *,
    localized: bool = True,
) -> pl.Expr:
    """The typed value from the raw text, its stripped form, its normalised number and whether it is blank.

    ``localized=False``: a file timestamp is left in the source's local time (see :func:`localize`).
    """
    kind = column.logical_type
    if kind == "string":
        return pl.when(filled).then(raw)
    if kind == "integer":
        return pl.when(text.str.contains(INTEGER)).then(text.cast(pl.Int64, strict=False))
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
        return parse_boolean(text)
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
        masked = pl.when(~text.is_in(list(fmt.empty_dates))).then(local)
        return localize(masked, fmt) if localized else masked
    raise ValueError(f"unsupported logical type {kind}")


def parse_boolean(text: pl.Expr) -> pl.Expr:
    lowered = text.str.to_lowercase()
    return (
        pl.when(lowered.is_in(["1", "true", "t", "y", "yes", "x"]))
        .then(True)
        .when(lowered.is_in(["0", "false", "f", "n", "no"]))
        .then(False)
    )


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
        grouped = rf"^[+-]?\d{{1,3}}(?:{regex_literal(sep)}\d{{3}})+(?:{regex_literal(fmt.decimal_separator)}\d*)?-?$"
        misplaced = text.str.contains(regex_literal(sep)) & ~text.str.contains(grouped)
        text = pl.when(~misplaced).then(text.str.replace_all(sep, "", literal=True))
    if fmt.decimal_separator != ".":
        text = text.str.replace(fmt.decimal_separator, ".", literal=True)
    return text


def regex_literal(text: str) -> str:
    """``text`` matched literally in a polars (Rust) regular expression."""
    return "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def minus_first(text: pl.Expr) -> pl.Expr:
    """The second step of :func:`normalise_number`: a trailing minus moved to the front."""
    return pl.when(text.str.ends_with("-")).then(pl.lit("-") + text.str.strip_suffix("-")).otherwise(text)


def is_present(column: str) -> pl.Expr:
    """True where the raw text holds a value (not null, not blank)."""
    return pl.col(column).is_not_null() & ~pl.col(column).str.contains(EMPTY)
