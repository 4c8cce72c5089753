"""The gates on an agent's own request, applied to its policy view: which columns, which rows, how many.

Each gate raises :class:`Denied` naming the rule (``columns``, ``classification``, ``policy_columns``,
``where``, ``limit``, ``query``) with a reason that never carries a protected value; the caller audits
the deny. :func:`select_columns` is also what ``assay policy explain`` and ``assay policy test`` run, so
what they report is what the gateway does.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from governance.masks import ColumnPlan
from schemas.contract import COLUMN_NAME

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_WHERE_CHARS = 4000


class Denied(Exception):
    """Internal: which rule denied a call, with a reason that never carries a protected value."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def limit_rows(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise Denied("limit", "limit must be a whole number of rows, 0 or more.")
    return min(limit, MAX_LIMIT)


def select_columns(
    columns: Sequence[str] | None, plan: ColumnPlan, dataset: str, agent: str, level: str
) -> list[str]:
    """The columns to return; asking for a withheld or unknown column denies the whole call."""
    if columns is None:
        return list(plan.shown)
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise Denied("columns", "columns must be a non-empty list of column names.")
    selected: list[str] = []
    for name in columns:
        if not isinstance(name, str) or not COLUMN_NAME.fullmatch(name):
            raise Denied("columns", "a requested column name is not a column name ([a-z_][a-z0-9_]*).")
        if name in plan.withheld:
            why = (
                f"its classification is above the {level} level's cap"
                if plan.withheld[name] == "classification"
                else "the agent's policy denies it"
            )
            rule = "classification" if plan.withheld[name] == "classification" else "policy_columns"
            raise Denied(rule, f"column {name} of {dataset} is withheld from agent {agent}: {why}.")
        if name not in plan.shown:
            raise Denied("columns", f"column {name} is not a column of {dataset}.")
        if name not in selected:
            selected.append(name)
    return selected


def where_expr(where: str, plan: ColumnPlan) -> pl.Expr:
    """Compile the agent's filter; it may only test columns of its (masked) view."""
    if not isinstance(where, str) or not where.strip() or len(where) > MAX_WHERE_CHARS:
        raise Denied(
            "where", f"where must be a SQL boolean expression of at most {MAX_WHERE_CHARS} characters."
        )
    try:
        expr = pl.sql_expr(where)
    except Exception:  # polars raises several error types for unparsable SQL; their text may echo values
        raise Denied("where", "where does not parse as a SQL boolean expression.") from None
    if expr.meta.has_multiple_outputs():
        raise Denied("where", "where must be one boolean expression over named columns.")
    outside = sorted(set(expr.meta.root_names()) - set(plan.shown))
    if outside:
        names = [n if COLUMN_NAME.fullmatch(n) else "(not a column name)" for n in outside]
        withheld = [n for n in outside if n in plan.withheld]
        why = "withheld from this agent" if withheld else "not in this agent's view"
        raise Denied("where", f"where tests {', '.join(names)}, {why}; it may only test the view's columns.")
    return expr


def collect(query: pl.LazyFrame) -> pl.DataFrame:
    try:
        return query.collect()
    except (
        pl.exceptions.PolarsError
    ) as exc:  # e.g. comparing text to a number; polars' message may echo values
        raise Denied(
            "query", f"the query could not run ({type(exc).__name__}); check the where clause's types."
        ) from None
