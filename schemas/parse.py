"""Typing raw source text: each contract column's string values become its declared type.

Every source hands validation the same thing: one String column per contract column, as the source
wrote it. Parsing is a polars expression per column; a value that is present but does not parse is
not an error here, it is a row-level ``type`` failure (see :mod:`schemas.validate`).

:func:`parse_expr` is what typing means. Validation types its frames (:class:`FrameTyping`) with
cheaper steps that give the same values: :func:`fast_typing` reads the text as it came, each value
in the plain form most values take (``4357,62``, ``20240131``, ``EUR``) by one cast, and flags every
other value *suspect*, to be typed again by the exact steps (:func:`exact_typing`); a number or
timestamp column whose text repeats is typed once per distinct text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from schemas.contract import Column, Contract, FileSource

EMPTY = r"^\s*$"
INTEGER = r"^[+-]?\d+$"
# A number or timestamp column is typed once per distinct text where a sample of a frame (about
# DISTINCT_SAMPLE rows, evenly spread) holds at most half as many distinct texts as values.
DISTINCT_KINDS = ("number", "timestamp")
DISTINCT_SAMPLE = 1024
# Date and time formats of digit directives and non-blank literals: a text such a format reads whole
# ends in a digit or a non-blank literal, so it has no trailing whitespace to strip (leading whitespace
# is told apart by fast_typing itself).
DIGIT_FORMAT = re.compile(r"(?:%[YymdHMS]|[^%\s])+")


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
    in the source's local time (see :func:`localize_values`). :attr:`suspect` names a Boolean column
    the steps add, true on each row they may type otherwise than :func:`parse_expr`: those rows must
    be typed again with :func:`exact_typing`. The steps' helper columns start with ``{typed}__``.
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


def fast_typing(column: Column, fmt: TextFormat, typed: str, *, trailing_minus: bool = True) -> Typing:
    """Steps typing the text as it came, one cast per value, leaving the rarer forms to :func:`exact_typing`.

    A value is typed here only in a form whose meaning is plain without stripping or normalising it:
    a string that does not start with whitespace (so it is blank only when empty), a number matching
    the declared digits with at most one decimal mark, a date the format reads whole. Every other
    non-empty value is flagged suspect. ``trailing_minus=False`` leaves a minus behind a number to the
    exact typing (its row is suspect) and spares the other rows the move. Types and dialects without
    such a form get :func:`exact_typing` (no row is then suspect).
    """
    raw = pl.col(column.name)
    present, suspect, ok = f"{typed}__present", f"{typed}__suspect", f"{typed}__ok"
    kind = column.logical_type
    written = raw != pl.lit("")
    shown = raw.is_not_null() & written
    unplain = ~pl.col(ok) & written
    if kind == "string":
        step = {typed: pl.when(written).then(raw), present: shown, suspect: _may_start_blank(raw)}
        return Typing([step], suspect=suspect)
    if kind == "integer":
        value = pl.when(pl.col(ok)).then(raw.cast(pl.Int64, strict=False))
        steps = [{ok: raw.str.contains(INTEGER)}, {typed: value, present: shown, suspect: unplain}]
        return Typing(steps, suspect=suspect)
    if kind == "number" and column.decimal is not None:
        pattern = _plain_decimal(column.decimal, fmt, trailing_minus=trailing_minus)
        if pattern is not None:
            number = raw
            if fmt.decimal_separator != ".":
                number = number.str.replace(fmt.decimal_separator, ".", literal=True)
            if trailing_minus:
                number = minus_first(number)
            value = pl.when(pl.col(ok)).then(number.cast(pl.Decimal(*column.decimal), strict=False))
            steps = [{ok: raw.str.contains(pattern)}, {typed: value, present: shown, suspect: unplain}]
            return Typing(steps, suspect=suspect)
    if kind == "boolean":
        unread = pl.col(typed).is_null() & written
        return Typing([{typed: _boolean(raw)}, {present: shown, suspect: unread}], suspect=suspect)
    if kind in ("date", "timestamp"):
        form = _digit_format(column, fmt)
        if form is not None:
            dtype = pl.Date() if kind == "date" else pl.Datetime("us")
            read = raw.str.strptime(dtype, form, strict=False, exact=True)
            empty = _empty_date(raw, fmt.empty_dates)
            if _reads_any(fmt.empty_dates, dtype, form):
                read = pl.when(~empty).then(read)
            unread = pl.col(typed).is_null() & written & ~empty
            steps = [{typed: read}, {present: shown & ~empty, suspect: _may_start_blank(raw) | unread}]
            return Typing(steps, local=kind == "timestamp", suspect=suspect)
    return exact_typing(column, fmt, typed)


def _may_start_blank(raw: pl.Expr) -> pl.Expr:
    """True where a non-empty value's first character may be whitespace (told by comparison alone).

    Whitespace is U+0009-U+000D, U+0020 or at least U+0085; text sorts by code point, so a value from
    '!' up to (not including) U+0085 starts with none of them.
    """
    return ((raw < pl.lit("!")) & (raw != pl.lit(""))) | (raw >= pl.lit("\u0085"))


def _plain_decimal(decimal: tuple[int, int], fmt: TextFormat, *, trailing_minus: bool) -> str | None:
    """The regular expression of the plain written forms of a decimal (None: no plain form here).

    Plain: digits within the declared precision, at most one decimal mark ('.' or the source's
    separator, never the thousands separator), a sign in front or, with ``trailing_minus``, a minus
    behind. Such a value has no grouping to check or drop, so it reads as :func:`normalise_number`
    reads it.
    """
    dec, sep = fmt.decimal_separator, fmt.thousands_separator or None
    if dec not in (".", ","):
        return None
    if sep is not None and (len(sep) != 1 or sep.isalnum() or sep in "+-" or sep == dec):
        return None
    marks = "".join(_literal(m) for m in sorted({dec, "."} - {sep}))
    precision, scale = decimal
    frac = rf"(?:[{marks}]\d{{1,{scale}}})?" if scale else ""
    body = rf"\d{{1,{max(precision - scale, 1)}}}{frac}"
    forms = [rf"[+-]?{body}", *([rf"{body}-"] if trailing_minus else [])]
    return rf"^(?:{'|'.join(forms)})$"


def _digit_format(column: Column, fmt: TextFormat) -> str | None:
    """A date or file timestamp format read by the fast typing (None: read it the exact way)."""
    if column.logical_type == "timestamp" and fmt.timestamp_format is None:
        return None
    form = column.format or (fmt.date_format if column.logical_type == "date" else fmt.timestamp_format)
    if form is None or DIGIT_FORMAT.fullmatch(form) is None:
        return None
    if any(m != m.strip() for m in fmt.empty_dates):  # an empty date is compared as stripped text
        return None
    return form


def _empty_date(text: pl.Expr, empty_dates: tuple[str, ...]) -> pl.Expr:
    if not empty_dates:
        return pl.lit(False)
    if len(empty_dates) == 1:
        return text == pl.lit(empty_dates[0])
    return text.is_in(list(empty_dates))


def _reads_any(texts: tuple[str, ...], dtype: pl.Date | pl.Datetime, form: str) -> bool:
    """Whether ``form`` reads any of ``texts`` as a date (an empty date that must be masked)."""
    values = pl.Series(list(texts), dtype=pl.String).str.strptime(dtype, form, strict=False, exact=True)
    return bool(values.is_not_null().any())


def _file_timestamp(column: Column, fmt: TextFormat) -> bool:
    return column.logical_type == "timestamp" and fmt.timestamp_format is not None


def localize(local: pl.Expr, fmt: TextFormat) -> pl.Expr:
    """Local times in the source's zone as UTC instants (the earlier of a repeated hour; null for one
    that never existed)."""
    return local.dt.replace_time_zone(
        fmt.timezone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def localize_values(local: pl.Series, fmt: TextFormat) -> pl.Series:
    """:func:`localize` of a Series, each distinct time converted once where times repeat.

    A batch's times repeat (a nightly run stamps many rows alike); the time zone lookup costs far
    more than finding a value among the distinct ones.
    """
    distinct = local.unique()
    if distinct.len() * 4 > local.len():
        return local.to_frame().select(localize(pl.first(), fmt)).to_series()
    utc = distinct.to_frame().select(localize(pl.first(), fmt)).to_series()
    return local.replace_strict(distinct, utc, default=None, return_dtype=utc.dtype)


def typed_name(column: str) -> str:
    """The name :class:`FrameTyping` gives a column's typed value."""
    return f"__typed__{column}"


def present_name(column: str) -> str:
    """The name :class:`FrameTyping` gives whether a column's text holds a value."""
    return f"{typed_name(column)}__present"


class FrameTyping:
    """Types the contract columns of the frames of one batch, each value as :func:`parse_expr` types it.

    Each frame is typed by :func:`fast_typing` and its suspect rows again by :func:`exact_typing`; a
    number or timestamp column whose text repeats is typed once per distinct text (``by_distinct``).
    A column whose frame turns out mostly suspect is typed the exact way from the next frame on. Which
    way a column goes changes the cost, never a value.
    """

    def __init__(self, columns: Sequence[Column], fmt: TextFormat, *, by_distinct: bool = True) -> None:
        self.columns = tuple(columns)
        self.fmt = fmt
        self.by_distinct = by_distinct
        self._exact: set[str] = set()  # columns whose text was mostly suspect
        self._exact_typings = {c.name: exact_typing(c, fmt, typed_name(c.name)) for c in self.columns}
        self._plans: dict[tuple[tuple[bool, ...], frozenset[str], tuple[str, ...]], _FramePlan] = {}

    def __call__(self, raw: pl.DataFrame, keep: Sequence[str]) -> pl.DataFrame:
        """``raw``'s columns ``keep`` (contract columns as String) and, per contract column, its
        :func:`typed_name` and :func:`present_name` columns."""
        plan = self._plan_for(raw)
        frame = raw.lazy().with_columns(plan.strings)
        for step in plan.steps:
            frame = frame.with_columns(step)
        if plan.distinct:
            frame = frame.with_columns(self._by_distinct(raw, plan.distinct))
        suspect = pl.any_horizontal(list(plan.suspects.values()) or [pl.lit(False)]).alias(_SUSPECT)
        # Only the values are kept: the helper columns (stripped text, normalised numbers) would
        # otherwise be materialised for every row.
        typed = frame.select([*keep, *plan.values, *plan.suspects.values(), suspect]).collect(
            engine="in-memory"
        )
        if typed.get_column(_SUSPECT).any():
            counts = {name: typed.get_column(flag).sum() for name, flag in plan.suspects.items()}
            flagged = [name for name, n in counts.items() if n]
            typed = self._retype(raw, typed, flagged)
            self._exact.update(name for name in flagged if counts[name] * 8 > typed.height)
        return typed.with_columns(localize_values(typed.get_column(name), self.fmt) for name in plan.local)

    def _plan_for(self, raw: pl.DataFrame) -> _FramePlan:
        """The plan for ``raw``, from a sample of its rows: does a number end with '-', does a number's
        or a timestamp's text repeat. A sample suffices: it only steers the cost (a trailing minus
        the plan did not expect makes its row suspect)."""
        numbers = [c.name for c in self.columns if c.logical_type == "number"]
        repeating = [c.name for c in self.columns if self.by_distinct and c.logical_type in DISTINCT_KINDS]
        sample = raw.gather_every(max(1, raw.height // DISTINCT_SAMPLE))
        looks = [
            *(pl.col(n).cast(pl.String).str.ends_with("-").any().alias(f"minus:{n}") for n in numbers),
            *(pl.col(n).drop_nulls().len().alias(f"count:{n}") for n in repeating),
            *(pl.col(n).drop_nulls().n_unique().alias(f"distinct:{n}") for n in repeating),
        ]
        look = sample.select(looks).row(0, named=True) if looks else {}
        minus = tuple(bool(look[f"minus:{n}"]) for n in numbers)
        distinct = tuple(n for n in repeating if 0 < look[f"distinct:{n}"] * 2 <= look[f"count:{n}"])
        key = (minus, frozenset(self._exact), distinct)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(dict(zip(numbers, minus, strict=True)), key[1], distinct)
        return plan

    def _retype(self, raw: pl.DataFrame, typed: pl.DataFrame, names: list[str]) -> pl.DataFrame:
        """``typed`` with the columns ``names`` typed again the exact way on every suspect row."""
        rows = typed.get_column(_SUSPECT).arg_true()
        frame = raw.select(pl.col(name).cast(pl.String) for name in names).gather(rows).lazy()
        for step in _merged([self._exact_typings[name] for name in names]):
            frame = frame.with_columns(step)
        outputs = [n for name in names for n in (typed_name(name), present_name(name))]
        exact = frame.select(outputs).collect(engine="in-memory")
        return typed.with_columns(
            typed.get_column(o).clone().scatter(rows, exact.get_column(o)) for o in outputs
        )

    def _by_distinct(self, raw: pl.DataFrame, names: Sequence[str]) -> list[pl.Expr]:
        """The typed values of the columns ``names``: their distinct texts typed the exact way, then
        looked up for each row."""
        distinct = []
        for name in names:
            frame = raw.lazy().select(pl.col(name).cast(pl.String).unique().drop_nulls())
            typing = self._exact_typings[name]
            for step in typing.steps:
                frame = frame.with_columns(**step)
            value = pl.col(typed_name(name))
            distinct.append(
                frame.select(name, localize(value, self.fmt) if typing.local else value, present_name(name))
            )
        lookups = []
        for name, each in zip(names, pl.collect_all(distinct, engine="in-memory"), strict=True):
            code = pl.col(name).cast(pl.String).cast(pl.Enum(each.get_column(name))).to_physical()
            lookups += [
                pl.lit(each.get_column(typed_name(name))).gather(code).alias(typed_name(name)),
                pl.lit(each.get_column(present_name(name)))
                .gather(code)
                .fill_null(False)
                .alias(present_name(name)),
            ]
        return lookups

    def _plan(
        self, trailing_minus: dict[str, bool], exact: frozenset[str], distinct: tuple[str, ...]
    ) -> _FramePlan:
        typings = {
            c.name: self._exact_typings[c.name]
            if c.name in exact
            else fast_typing(c, self.fmt, typed_name(c.name), trailing_minus=trailing_minus.get(c.name, True))
            for c in self.columns
            if c.name not in distinct
        }
        return _FramePlan(
            strings=[pl.col(c.name).cast(pl.String) for c in self.columns],
            steps=_merged(list(typings.values())),
            values=[n for c in self.columns for n in (typed_name(c.name), present_name(c.name))],
            suspects={name: t.suspect for name, t in typings.items() if t.suspect},
            local=[typed_name(name) for name, t in typings.items() if t.local],
            distinct=distinct,
        )


@dataclass(frozen=True)
class _FramePlan:
    """How :class:`FrameTyping` types one kind of frame (which numbers have a trailing minus, which
    columns are typed the exact way, which once per distinct text)."""

    strings: list[pl.Expr]
    steps: list[list[pl.Expr]]
    values: list[str]
    suspects: dict[str, str]  # column name: the name of its suspect flag
    local: list[str]  # typed columns still in the source's local time
    distinct: tuple[str, ...]  # columns typed once per distinct text


_SUSPECT = "__typed__suspect"  # true where any column's fast typing was suspect


def _merged(typings: list[Typing]) -> list[list[pl.Expr]]:
    """The typings' steps as ``with_columns`` contexts: the first steps of all columns together, and so on."""
    depth = max((len(t.steps) for t in typings), default=0)
    return [
        [e.alias(name) for t in typings if d < len(t.steps) for name, e in t.steps[d].items()]
        for d in range(depth)
    ]


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
        return _boolean(text)
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


def _boolean(text: pl.Expr) -> pl.Expr:
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
