"""Control records: a batch's own figures (counts, amount totals, hash totals) checked against its records.

A control record closes a scope (the whole file, or each batch/group/account opened by a header record)
and declares figures about it; every figure is recomputed from the records in the scope, vectorised
(one ``group_by`` per control record type), and compared exactly. A scope without its control record
(a truncated file), a control record closing nothing, an unreadable figure, or a figure that differs
each become a :class:`~connectors.manifest.ControlProblem` naming file, line, figure, the expected
(declared) and actual (recomputed) values, and the fix. The engine knows no format: readers pass how to
read a position (``text``) and, for ``column`` values, the units of a column they produced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl

from connectors.manifest import ControlProblem
from connectors.zoned import UNITS, units
from schemas.controls import Condition, ControlRecord, Figure, Span

KIND = "_kind"
LINE = "_source_line"
MAX_MESSAGES = 20  # per control figure; the rest are summarised in one more problem

TextOf = Callable[[Span], pl.Expr]
ColumnUnits = Callable[[str], tuple[pl.Expr, int]]


@dataclass(frozen=True)
class FigureResult:
    """A file-level figure after reconciliation, for the manifest (declared vs recomputed)."""

    name: str
    kind: str
    of: tuple[str, ...]
    declared: Decimal | None
    actual: Decimal | None


def manifest_figures(results: Sequence[FigureResult]) -> tuple[tuple[str, str | None, str | None], ...]:
    """File-level figures as the manifest keeps them: (name, declared, actual) in plain decimal text."""
    return tuple((r.name, _text(r.declared), _text(r.actual)) for r in results)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def scope(kind: pl.Expr, opens: str, closes: str) -> tuple[pl.Expr, pl.Expr]:
    """(inside, scope id) per record for scopes opened by ``opens`` and closed by ``closes`` records.

    A record is inside when it opens a scope or the last opening/closing record before it opened one;
    a second opening record before a close starts a new scope (the first one then lacks its control).
    """
    event = pl.when(kind == opens).then(pl.lit(1)).when(kind == closes).then(pl.lit(0)).forward_fill()
    inside = ((kind == opens) | (event.shift(1) == 1)).fill_null(False)
    return inside, (kind == opens).fill_null(False).cast(pl.Int64).cum_sum()


class Scope:
    """:func:`scope` chunk by chunk: the open/closed state and the scope count carry over to the next chunk."""

    def __init__(self, opens: str, closes: str) -> None:
        self.opens, self.closes = opens, closes
        self.event: int | None = None  # 1 after an opening record, 0 after a closing one
        self.sid = 0

    def mark(self, records: pl.DataFrame) -> pl.DataFrame:
        """``records`` (in file order, after those already marked) with ``_in`` and ``_sid``."""
        kind = pl.col(KIND)
        carried = pl.lit(self.event, pl.Int32)
        opening = (kind == self.opens).fill_null(False)
        event = (
            pl.when(kind == self.opens)
            .then(pl.lit(1, pl.Int32))
            .when(kind == self.closes)
            .then(pl.lit(0, pl.Int32))
            .forward_fill()
            .fill_null(carried)
        )
        marked = records.with_columns(_event=event, _open=opening).with_columns(
            _in=(pl.col("_open") | (pl.col("_event").shift(1, fill_value=carried) == 1)).fill_null(False),
            _sid=pl.col("_open").cast(pl.Int64).cum_sum() + self.sid,
        )
        if marked.height:
            last = marked.get_column("_event")[-1]
            self.event = None if last is None else int(last)
            self.sid = int(marked.get_column("_sid")[-1])
        return marked.drop("_event", "_open")


def reconcile(
    records: pl.DataFrame,
    controls: Sequence[ControlRecord],
    *,
    source: str,
    text: TextOf,
    column_units: ColumnUnits | None = None,
    physical_records: int | None = None,
) -> tuple[list[ControlProblem], list[FigureResult]]:
    """Check every control record of ``records`` (columns ``_kind``, ``_source_line`` and what ``text`` reads).

    Parameters
    ----------
    records
        Every logical record of the file except block padding, in file order.
    controls
        The contract's control records.
    source
        The file name, for messages.
    text
        The raw text at a position or field of each record, as an expression.
    column_units
        For values declared as ``column``: the units expression of that column and its scale.
    physical_records
        Records in the file including padding, for block counts.
    """
    tally = ControlTally(controls, source=source, text=text, column_units=column_units)
    tally.add(records)
    return tally.finish(physical_records)


class ControlTally:
    """:func:`reconcile` over a file read chunk by chunk: each chunk's records are reduced to the control
    records and one aggregate row per scope, so memory does not grow with the detail records."""

    def __init__(
        self,
        controls: Sequence[ControlRecord],
        *,
        source: str,
        text: TextOf,
        column_units: ColumnUnits | None = None,
    ) -> None:
        self.scans = [_ControlScan(c, source, text, column_units) for c in controls]

    def add(self, records: pl.DataFrame) -> None:
        """The next records of the file (block padding left out), in file order."""
        for scan in self.scans:
            scan.add(records)

    def finish(self, physical_records: int | None = None) -> tuple[list[ControlProblem], list[FigureResult]]:
        problems: list[ControlProblem] = []
        results: list[FigureResult] = []
        for scan in self.scans:
            problems.extend(scan.finish(physical_records, results))
        return problems, results


def _number(span: Span, text: TextOf, column_units: ColumnUnits | None) -> tuple[pl.Expr, int]:
    if span.column is not None:
        if column_units is None:
            raise ValueError(f"no column {span.column!r} to total")
        return column_units(span.column)
    implied = span.field is None  # positions hold digits only; delimited fields write the decimal point
    return units(text(span), scale=span.scale, implied=implied, overpunch=span.overpunch), span.scale


def _matches(cond: Condition | None, text: TextOf) -> pl.Expr:
    if cond is None:
        return pl.lit(True)
    return text(cond.at).str.strip_chars(" ").is_in(list(cond.values)).fill_null(False)


class _ControlScan:
    """One control record's figures, recomputed chunk by chunk and compared once the file is read."""

    def __init__(
        self, control: ControlRecord, name: str, text: TextOf, column_units: ColumnUnits | None
    ) -> None:
        self.control, self.name = control, name
        self.scope = Scope(control.opens, control.record) if control.opens is not None else None
        self.closers: list[pl.DataFrame] = []
        self.opened: list[pl.DataFrame] = []
        self.actual: list[pl.DataFrame] = []
        self.orphans, self.first_orphan, self.last_line = 0, 0, 0
        kind = pl.col(KIND)
        self.declared: list[pl.Expr] = []
        self.aggregates: list[pl.Expr] = []
        self.merge: list[pl.Expr] = []
        self.scales: dict[str, tuple[int, int]] = {}
        self.values: dict[str, pl.Expr] = {}
        for i, figure in enumerate(control.figures):
            d_units, d_scale = _number(figure.at, text, column_units)
            self.declared.append(d_units.alias(f"d{i}"))
            member = kind.is_in(list(figure.of)) if figure.of else pl.col(LINE).is_not_null()  # every record
            if figure.kind == "count":
                self.aggregates.append(member.sum().cast(UNITS).alias(f"a{i}"))
                self.merge.append(pl.col(f"a{i}").sum())
                self.scales[figure.name] = (d_scale, 0)
            elif figure.kind in ("sum", "hash"):
                assert figure.value is not None
                value, v_scale = _number(figure.value, text, column_units)
                self.values[f"__v{i}"] = value  # computed once per record, read three times below
                v = pl.col(f"__v{i}")
                counted = member & _matches(figure.when, text)
                signed = (
                    pl.when(_matches(figure.negate_when, text)).then(-v).otherwise(v)
                    if figure.negate_when
                    else v
                )
                self.aggregates += [
                    pl.when(counted).then(signed).sum().alias(f"a{i}"),
                    (counted & v.is_null()).sum().alias(f"u{i}"),
                    pl.col(LINE).filter(counted & v.is_null()).first().alias(f"l{i}"),
                ]
                self.merge += [pl.col(f"a{i}").sum(), pl.col(f"u{i}").sum(), pl.col(f"l{i}").min()]
                self.scales[figure.name] = (d_scale, v_scale)
            else:  # blocks: a property of the whole file
                self.scales[figure.name] = (d_scale, 0)

    def add(self, records: pl.DataFrame) -> None:
        if records.height == 0:
            return
        self.last_line = int(records.get_column(LINE)[-1])
        closes = pl.col(KIND) == self.control.record
        if self.scope is None:
            frame = records.with_columns(_in=pl.lit(True), _sid=pl.lit(1, pl.Int64))
        else:
            frame = self.scope.mark(records)
            self.opened.append(frame.filter(pl.col(KIND) == self.control.opens).select("_sid", LINE))
            orphans = frame.filter(closes & ~pl.col("_in")).get_column(LINE)
            if orphans.len():
                self.first_orphan = self.first_orphan or int(orphans[0])
                self.orphans += orphans.len()
        self.closers.append(frame.filter(closes & pl.col("_in")).select("_sid", LINE, *self.declared))
        if self.aggregates:
            members = frame.lazy().filter(pl.col("_in")).with_columns(**self.values)
            self.actual.append(members.group_by("_sid").agg(self.aggregates).collect())

    def finish(self, physical: int | None, results: list[FigureResult]) -> list[ControlProblem]:
        control, name = self.control, self.name
        what = f"{control.level} control record '{control.record}'"
        fix = "Fix: the file does not reconcile with its own control records; ask the source to re-send it."
        problems: list[ControlProblem] = []
        closers = (
            pl.concat(self.closers)
            if self.closers
            else pl.DataFrame(schema={"_sid": pl.Int64, LINE: pl.Int64})
        )
        if control.opens is None:
            if closers.height == 0:
                last = self.last_line
                return [
                    ControlProblem(
                        "structure",
                        f"{name} line {last}: no {what}; the file is truncated or incomplete. "
                        "Fix: wait for the complete file or ask the source to re-send it.",
                        line=last or None,
                    )
                ]
            if closers.height > 1:
                lines = closers.get_column(LINE).to_list()
                problems.append(
                    ControlProblem(
                        "structure",
                        f"{name} lines {lines[:5]}: {closers.height} {what}s, expected one. "
                        "Fix: the file holds several files or was altered; ask the source to re-send it.",
                        line=int(lines[1]),
                    )
                )
                closers = closers.head(1)
        elif self.opened:
            opened = pl.concat(self.opened)
            unclosed = opened.join(closers.select("_sid"), on="_sid", how="anti")
            for line in unclosed.get_column(LINE).head(MAX_MESSAGES).to_list():
                problems.append(
                    ControlProblem(
                        "structure",
                        f"{name} line {line}: the {control.level} opened here (record '{control.opens}') has "
                        f"no {what}; the file is truncated or the control record is missing. "
                        "Fix: ask the source to re-send the file.",
                        line=int(line),
                    )
                )
            if self.orphans:
                problems.append(
                    ControlProblem(
                        "structure",
                        f"{name} line {self.first_orphan}: {what} closes no open {control.level} "
                        f"(no '{control.opens}' record before it; {self.orphans} such record(s)). "
                        "Fix: the records are out of order; ask the source to re-send the file.",
                        line=self.first_orphan,
                    )
                )
        if closers.height == 0:
            return _capped(problems, name)
        declared, scales = self.declared, self.scales
        table = closers
        if self.actual:
            actual = pl.concat(self.actual).group_by("_sid").agg(self.merge)
            table = table.join(actual, on="_sid", how="left")
        blank = table.filter(pl.all_horizontal([pl.col(f"d{i}").is_null() for i in range(len(declared))]))
        for line in blank.get_column(LINE).cast(pl.Int64).to_list():
            problems.append(
                ControlProblem(
                    "controls",
                    f"{name} line {line}: the {what} holds no readable figure (blank or cut short). {fix}",
                    line=line,
                )
            )
        table = table.join(blank.select("_sid"), on="_sid", how="anti")
        for i, figure in enumerate(control.figures):
            d_scale, a_scale = scales[figure.name]
            for row in table.iter_rows(named=True):  # one row per control record (batch), never per detail
                line = int(row[LINE])
                where = f"{name} line {line} ({what}), {figure.name}"
                if row[f"d{i}"] is None:
                    problems.append(
                        ControlProblem(
                            "controls",
                            f"{where}: the declared figure is not a number. {fix}",
                            line=line,
                            column=figure.name,
                        )
                    )
                    continue
                if figure.kind in ("sum", "hash") and row.get(f"u{i}"):
                    problems.append(
                        ControlProblem(
                            "controls",
                            f"{name} line {row[f'l{i}']}: the value behind {figure.name} cannot be read "
                            f"({row[f'u{i}']} record(s)), so {where} cannot be reconciled. {fix}",
                            line=int(row[f"l{i}"]),
                            column=figure.name,
                        )
                    )
                    continue
                expected = Decimal(int(row[f"d{i}"])).scaleb(-d_scale)
                if figure.kind == "blocks":
                    assert figure.per is not None
                    found = Decimal(math.ceil((physical or 0) / figure.per))
                else:
                    raw = int(row.get(f"a{i}") or 0)
                    if figure.kind == "hash":
                        assert figure.digits is not None
                        raw %= 10**figure.digits
                    found = Decimal(raw).scaleb(-a_scale)
                if control.opens is None:
                    results.append(FigureResult(figure.name, figure.kind, figure.of, expected, found))
                if expected != found:
                    scope_text = "in the file" if control.opens is None else f"in the {control.level}"
                    problems.append(
                        ControlProblem(
                            "controls",
                            f"{where}: expected {_show(expected)} (declared), found {_show(found)} "
                            f"({_recomputed(figure)} {scope_text}). {fix}",
                            line=line,
                            column=figure.name,
                            expected=_show(expected),
                            actual=_show(found),
                        )
                    )
        return _capped(problems, name)


def _recomputed(figure: Figure) -> str:
    of = f"record(s) of type {', '.join(figure.of)}" if figure.of else "records"
    return {
        "count": f"counted {of}",
        "sum": f"summed over {of}",
        "hash": f"low {figure.digits} digits of the sum over {of}",
        "blocks": f"records / {figure.per}, rounded up",
    }[figure.kind]


def _show(value: Decimal) -> str:
    return f"{value:f}"


def _capped(problems: list[ControlProblem], name: str) -> list[ControlProblem]:
    """At most :data:`MAX_MESSAGES` problems per figure, plus one saying how many more there are."""
    by_figure: dict[Any, list[ControlProblem]] = {}
    for p in problems:
        by_figure.setdefault((p.check, p.column), []).append(p)
    out: list[ControlProblem] = []
    for (check, column), items in by_figure.items():
        out.extend(items[:MAX_MESSAGES])
        if len(items) > MAX_MESSAGES:
            out.append(
                ControlProblem(
                    check,
                    f"{name}: {len(items) - MAX_MESSAGES} more {column or check} problem(s) like the above.",
                    column=column,
                )
            )
    return out
