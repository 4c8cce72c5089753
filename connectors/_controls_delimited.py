"""What a delimited batch says about itself: header facts and trailer controls, reconciled exactly.

:class:`connectors.delimited.DelimitedFile` adds every chunk's detail records to a :class:`Tally`;
:func:`reconcile` then compares the trailer's record count and amount total with them, and
:func:`header_facts` reads the batch id and business date from the header record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path

import polars as pl

from connectors.manifest import ControlProblem, Controls
from schemas.contract import DelimitedSource
from schemas.parse import TextFormat

CONTROL_AMOUNT = re.compile(r"^[+-]?[0-9]{1,24}(\.[0-9]{1,12})?$")


@dataclass
class Edge:
    """A header or trailer record: its line number and fields."""

    line: int
    fields: list[str]


@dataclass
class Tally:
    """What the pass over a file found: its edges, and the control figures of its detail records."""

    lines: int = 0  # physical lines
    records: int = 0  # records, header and trailer included
    rows: int = 0
    details: int = 0
    total: Decimal | None = None
    unreadable: int = 0
    first_unreadable: int | None = None
    header: Edge | None = None
    trailer: Edge | None = None


def reconcile(tally: Tally, problems: list[ControlProblem], name: str, src: DelimitedSource) -> Controls:
    """Compare the trailer's record count and amount total with every physical detail record."""
    c = src.controls
    trailer = tally.trailer
    actual_count = tally.details
    declared_count = declared_total = actual_total = None
    if trailer is not None and c.record_count_field is not None:
        raw = _field(trailer, c.record_count_field)
        line = trailer.line
        if raw is None or not re.fullmatch(r"[0-9]+", raw.strip()):
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {line} (trailer), field {c.record_count_field}: "
                    "record count is not a whole number. Fix: ask the source to re-send the batch.",
                    line=line,
                )
            )
        else:
            declared_count = int(raw.strip())
            if declared_count != actual_count:
                problems.append(
                    ControlProblem(
                        "controls",
                        f"{name} line {line} (trailer): record count expected {declared_count} (trailer), "
                        f"found {actual_count} detail records. Fix: the file is incomplete or altered; ask the "
                        "source to re-send the batch.",
                        line=line,
                    )
                )
    if trailer is not None and c.amount_total_field is not None and c.amount_column is not None:
        line = trailer.line
        declared_total = _decimal(_field(trailer, c.amount_total_field), src)
        if declared_total is None:
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {line} (trailer), field {c.amount_total_field}: "
                    "the amount total is not a number. Fix: ask the source to re-send the batch.",
                    line=line,
                    column=c.amount_column,
                )
            )
        if tally.unreadable:
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {tally.first_unreadable}, column {c.amount_column}: the controlled amount "
                    f"cannot be read ({tally.unreadable} detail record(s)), so the batch cannot be reconciled "
                    "with its trailer. Fix: ask the source to re-send the batch.",
                    line=tally.first_unreadable,
                    column=c.amount_column,
                )
            )
        else:
            actual_total = tally.total if tally.total is not None else Decimal(0)
            if declared_total is not None:
                # Compared exactly: a trailer of 2481 does not reconcile details summing to 2481.12.
                # The trailer's scale is used for display only where that loses nothing.
                with localcontext(prec=80):
                    same_scale = actual_total.quantize(declared_total)
                actual_total = same_scale if same_scale == actual_total else _plain(actual_total)
            if declared_total is not None and declared_total != actual_total:
                problems.append(
                    ControlProblem(
                        "controls",
                        f"{name} line {line} (trailer), column {c.amount_column}: control total expected "
                        f"{declared_total} (trailer), found {actual_total} (sum of {actual_count} detail "
                        "records). Fix: the batch does not reconcile; ask the source to re-send it.",
                        line=line,
                        column=c.amount_column,
                    )
                )
    return Controls(declared_count, actual_count, declared_total, actual_total, tuple(problems))


def kind_of(edge: Edge, index: int) -> str | None:
    return edge.fields[index] if index < len(edge.fields) else None


def _field(edge: Edge, index: int) -> str | None:
    return edge.fields[index] if index < len(edge.fields) else None


def _decimal(text: str | None, source: DelimitedSource) -> Decimal | None:
    if text is None:
        return None
    t = text.strip()
    if source.thousands_separator:
        t = t.replace(source.thousands_separator, "")
    t = t.replace(source.decimal_separator, ".")
    if t.endswith("-"):
        t = "-" + t[:-1]
    if not CONTROL_AMOUNT.fullmatch(t):  # no NaN, Infinity, exponents or non-ASCII digits
        return None
    try:
        return Decimal(t)
    except InvalidOperation:
        return None


def _plain(value: Decimal) -> Decimal:
    """``2481.120000000000`` as ``2481.12``, for messages (never in exponent notation)."""
    exponent = value.normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    with localcontext(prec=80):
        return value.quantize(Decimal(1).scaleb(-places))


def number_format(source: DelimitedSource) -> TextFormat:
    return TextFormat(
        decimal_separator=source.decimal_separator, thousands_separator=source.thousands_separator
    )


def control_amount(number: pl.Expr) -> pl.Expr:
    """A controlled amount (normalised text) as an exact decimal, null where unreadable, vectorised."""
    return pl.when(number.str.contains(CONTROL_AMOUNT.pattern)).then(
        number.cast(pl.Decimal(38, 12), strict=False)
    )


def header_facts(
    header: Edge | None, path: Path, source: DelimitedSource
) -> tuple[str, date | None, list[ControlProblem]]:
    """Batch id and business date from the header, or from the file name when there is no header."""
    c = source.controls
    problems: list[ControlProblem] = []
    batch_id = path.stem
    business_date: date | None = None
    if header is None:
        return batch_id, business_date, problems
    if c.batch_id_field is not None:
        raw = (_field(header, c.batch_id_field) or "").strip()
        if raw:
            batch_id = raw
        else:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{path.name} line 1 (header), field {c.batch_id_field}: "
                    "batch id is empty. Fix: ask the source to re-send the batch.",
                    line=1,
                )
            )
    if c.business_date_field is not None:
        raw = (_field(header, c.business_date_field) or "").strip()
        try:
            business_date = datetime.strptime(raw, source.date_format).date()
        except ValueError:
            problems.append(
                ControlProblem(
                    "structure",
                    f"{path.name} line 1 (header), field {c.business_date_field}: business date is not a "
                    f"date in format {source.date_format}. Fix: ask the source to re-send the batch.",
                    line=1,
                )
            )
    return batch_id, business_date, problems
