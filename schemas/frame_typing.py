"""Typing the frames of a batch for validation: the values of :func:`schemas.parse.parse_expr`, cheaper.

:func:`fast_typing` reads the text as it came, each value in the plain form most values take
(``4357,62``, ``20240131``, ``EUR``) by one cast, and flags every other value *suspect*, to be typed
again by the exact steps (:func:`schemas.parse.exact_typing`); a number or timestamp column whose text
repeats is typed once per distinct text. :class:`FrameTyping` puts the two together per frame.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from schemas.contract import Column
from schemas.parse import (
    INTEGER,
    TextFormat,
    Typing,
    exact_typing,
    localize,
    minus_first,
    parse_boolean,
    regex_literal,
)

# A number or timestamp column is typed once per distinct text where a sample of a frame (about
# DISTINCT_SAMPLE rows, see sample_rows) holds at most half as many distinct texts as values.
DISTINCT_KINDS = ("number", "timestamp")
DISTINCT_SAMPLE = 1024
# Date and time formats of digit directives and non-blank literals: a text such a format reads whole
# ends in a digit or a non-blank literal, so it has no trailing whitespace to strip (leading whitespace
# is told apart by fast_typing itself).
DIGIT_FORMAT = re.compile(r"(?:%[YymdHMS]|[^%\s])+")


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
    written = raw.str.len_bytes() > 0  # as raw != "", reading the lengths alone
    shown = raw.is_not_null() & written
    unplain = ~pl.col(ok) & written
    if kind == "string":
        step = {typed: pl.when(written).then(raw), present: shown, suspect: _may_start_blank(raw, written)}
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
        return Typing([{typed: parse_boolean(raw)}, {present: shown, suspect: unread}], suspect=suspect)
    if kind in ("date", "timestamp"):
        form = _digit_format(column, fmt)
        if form is not None:
            dtype = pl.Date() if kind == "date" else pl.Datetime("us")
            read = raw.str.strptime(dtype, form, strict=False, exact=True)
            empty = _empty_date(raw, fmt.empty_dates)
            if _reads_any(fmt.empty_dates, dtype, form):
                read = pl.when(~empty).then(read)
            unread = pl.col(typed).is_null() & written & ~empty
            steps = [
                {typed: read},
                {present: shown & ~empty, suspect: _may_start_blank(raw, written) | unread},
            ]
            return Typing(steps, local=kind == "timestamp", suspect=suspect)
    return exact_typing(column, fmt, typed)


def _may_start_blank(raw: pl.Expr, written: pl.Expr) -> pl.Expr:
    """True where a non-empty value's first character may be whitespace (told by comparison alone).

    Whitespace is U+0009-U+000D, U+0020 or at least U+0085; text sorts by code point, so a value from
    '!' up to (not including) U+0085 starts with none of them.
    """
    return ((raw < pl.lit("!")) & written) | (raw >= pl.lit("\u0085"))


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
    marks = "".join(regex_literal(m) for m in sorted({dec, "."} - {sep}))
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


def sample_rows(height: int) -> pl.Series:
    """The rows of a frame of ``height`` rows whose texts steer its typing plan: all of a small frame,
    else :data:`DISTINCT_SAMPLE` of them drawn at random (seeded: the same rows for the same height), in order.

    Not every n-th row: in data whose values cycle (a generated export, rows in a repeating order) a
    stride in step with the cycle sees a fraction of the values, and every row it misses is typed the
    slow way (a stride of 36 over values cycling every 168 rows missed half the rows of three columns).
    """
    rows = pl.int_range(0, height, dtype=pl.UInt32, eager=True)
    return rows if height <= DISTINCT_SAMPLE else rows.sample(DISTINCT_SAMPLE, seed=0).sort()


def typed_name(column: str) -> str:
    """The name :class:`FrameTyping` gives a column's typed value."""
    return f"__typed__{column}"


def _suspect_name(column: str) -> str:
    """The name of a column's suspect flag (see :attr:`schemas.parse.Typing.suspect`)."""
    return f"{typed_name(column)}__suspect"


def present_name(column: str) -> str:
    """The name :class:`FrameTyping` gives whether a column's text holds a value."""
    return f"{typed_name(column)}__present"


class FrameTyping:
    """Types the contract columns of the frames of one batch, each value as :func:`parse_expr` types it.

    Each frame is typed by :func:`fast_typing` and its suspect rows again by :func:`exact_typing`; a
    number or timestamp column whose text repeats is typed once per distinct text (``by_distinct``):
    the distinct texts of a sample of the frame, each row looking its text up among them; a row whose
    text the sample lacks is suspect. A column whose frame turns out mostly suspect (other than by
    such misses) is typed the exact way from the next frame on. Which way a column goes changes the
    cost, never a value.
    """

    def __init__(self, columns: Sequence[Column], fmt: TextFormat, *, by_distinct: bool = True) -> None:
        self.columns = tuple(columns)
        self.fmt = fmt
        self.by_distinct = by_distinct
        self._exact: set[str] = set()  # columns whose text was mostly suspect
        built = _built(tuple((c.name, c.logical_type, c.decimal, c.format) for c in self.columns), fmt)
        self._exact_typings, self._plans = built.exact, built.plans

    def __call__(self, raw: pl.DataFrame, keep: Sequence[str]) -> pl.DataFrame:
        """``raw``'s columns ``keep`` (contract columns as String) and, per contract column, its
        :func:`typed_name` and :func:`present_name` columns."""
        plan, texts = self._plan_for(raw)
        frame = raw.lazy().with_columns(plan.strings)
        for step in plan.steps:
            frame = frame.with_columns(step)
        if plan.distinct:
            frame = frame.with_columns(self._by_distinct(texts))
        suspect = pl.any_horizontal(list(plan.suspects.values()) or [pl.lit(False)]).alias(_SUSPECT)
        # Only the values are kept: the helper columns (stripped text, normalised numbers) would
        # otherwise be materialised for every row.
        typed = frame.select([*keep, *plan.values, *plan.suspects.values(), suspect]).collect(
            engine="in-memory"
        )
        if typed.get_column(_SUSPECT).any():
            counts = {name: typed.get_column(flag).sum() for name, flag in plan.suspects.items()}
            flagged = [name for name, n in counts.items() if n]
            typed = self._retype(raw, typed, flagged, plan.distinct)
            mostly = (name for name in flagged if counts[name] * 8 > typed.height)
            self._exact.update(name for name in mostly if name not in plan.distinct)
        return typed.with_columns(localize_values(typed.get_column(name), self.fmt) for name in plan.local)

    def _plan_for(self, raw: pl.DataFrame) -> tuple[_FramePlan, dict[str, pl.Series]]:
        """The plan for ``raw``, from a sample of its rows: does a number end with '-', does a number's
        or a timestamp's text repeat; and the sample's distinct texts of each column the plan types
        by distinct text. A sample suffices: it only steers the cost (a trailing minus the plan did
        not expect, a text the sample lacks, makes its row suspect)."""
        numbers = [c.name for c in self.columns if c.logical_type == "number"]
        repeating = [c.name for c in self.columns if self.by_distinct and c.logical_type in DISTINCT_KINDS]
        # The sample's rows gathered by index, of the columns looked at alone: DataFrame.gather_every
        # costs about 2 ms a frame, several times the looks themselves.
        sample = raw.select(pl.col(dict.fromkeys([*numbers, *repeating])).gather(sample_rows(raw.height)))
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
        return plan, {n: sample.get_column(n).cast(pl.String).drop_nulls().unique() for n in distinct}

    def _exact_typing(self, name: str) -> Typing:
        typing = self._exact_typings.get(name)
        if typing is None:
            column = next(c for c in self.columns if c.name == name)
            typing = self._exact_typings[name] = exact_typing(column, self.fmt, typed_name(name))
        return typing

    def _retype(
        self, raw: pl.DataFrame, typed: pl.DataFrame, names: list[str], distinct: Sequence[str]
    ) -> pl.DataFrame:
        """``typed`` with the columns ``names`` typed again the exact way on every suspect row (the
        columns typed by ``distinct`` text hold their times in UTC already)."""
        rows = typed.get_column(_SUSPECT).arg_true()
        frame = raw.select(pl.col(name).cast(pl.String) for name in names).gather(rows).lazy()
        typings = {name: self._exact_typing(name) for name in names}
        for step in _merged(list(typings.values())):
            frame = frame.with_columns(step)
        outputs = [n for name in names for n in (typed_name(name), present_name(name))]
        utc = [
            localize(pl.col(typed_name(name)), self.fmt).alias(typed_name(name))
            for name, typing in typings.items()
            if typing.local and name in distinct
        ]
        exact = frame.with_columns(utc).select(outputs).collect(engine="in-memory")
        return typed.with_columns(
            typed.get_column(o).clone().scatter(rows, exact.get_column(o)) for o in outputs
        )

    def _by_distinct(self, texts: dict[str, pl.Series]) -> list[pl.Expr]:
        """The typed values of the columns named in ``texts`` and their suspect flags: the given
        distinct texts of each typed the exact way, then looked up for each row. A row whose text is
        not among them is suspect (its value null)."""
        distinct = []
        for name, seen in texts.items():
            frame = pl.LazyFrame({name: seen})
            typing = self._exact_typing(name)
            for step in typing.steps:
                frame = frame.with_columns(**step)
            value = pl.col(typed_name(name))
            distinct.append(
                frame.select(name, localize(value, self.fmt) if typing.local else value, present_name(name))
            )
        lookups = []
        for name, each in zip(texts, pl.collect_all(distinct, engine="in-memory"), strict=True):
            text = pl.col(name).cast(pl.String)
            code = text.cast(pl.Enum(each.get_column(name)), strict=False).to_physical()
            lookups += [
                (code.is_null() & text.is_not_null()).alias(_suspect_name(name)),
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
            c.name: self._exact_typing(c.name)
            if c.name in exact
            else fast_typing(c, self.fmt, typed_name(c.name), trailing_minus=trailing_minus.get(c.name, True))
            for c in self.columns
            if c.name not in distinct
        }
        return _FramePlan(
            strings=[pl.col(c.name).cast(pl.String) for c in self.columns],
            steps=_merged(list(typings.values())),
            values=[n for c in self.columns for n in (typed_name(c.name), present_name(c.name))],
            suspects={
                **{name: t.suspect for name, t in typings.items() if t.suspect},
                **{name: _suspect_name(name) for name in distinct},
            },
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


PlanKey = tuple[tuple[bool, ...], frozenset[str], tuple[str, ...]]  # see FrameTyping._plan_for


@dataclass(frozen=True)
class _Built:
    """The expressions typing the frames of one column layout and text format, built as needed (in
    milliseconds of Python each) and kept for every :class:`FrameTyping` of that layout and format."""

    exact: dict[str, Typing]  # column name: its exact_typing
    plans: dict[PlanKey, _FramePlan]


@functools.lru_cache(maxsize=64)
def _built(
    layout: tuple[tuple[str, str, tuple[int, int] | None, str | None], ...], fmt: TextFormat
) -> _Built:
    """The expressions of the columns ``layout`` (name, logical type, decimal, format: all that typing
    reads of a column) and ``fmt``, shared by every caller."""
    return _Built({}, {})


_SUSPECT = "__typed__suspect"  # true where any column's fast typing was suspect


def _merged(typings: list[Typing]) -> list[list[pl.Expr]]:
    """The typings' steps as ``with_columns`` contexts: the first steps of all columns together, and so on."""
    depth = max((len(t.steps) for t in typings), default=0)
    return [
        [e.alias(name) for t in typings if d < len(t.steps) for name, e in t.steps[d].items()]
        for d in range(depth)
    ]
