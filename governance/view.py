"""The gates on an agent's own request, applied to its policy view: which columns, which rows, how many.

Each gate raises :class:`Denied` naming the rule (``columns``, ``classification``, ``policy_columns``,
``where``, ``limit``, ``query``, ``quota``) with a reason that never carries a protected value; the caller audits
the deny. :func:`select_columns` is also what ``assay policy explain`` and ``assay policy test`` run, so
what they report is what the gateway does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import polars as pl

from governance.masks import ColumnPlan, column_plan, mask_expr, purpose_key
from governance.policy import Grant
from governance.read_cache import CertifiedFrame
from schemas.contract import COLUMN_NAME, Contract

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
# Per-call row caps below MAX_LIMIT for a level: an intern gets small samples, never bulk extracts.
LEVEL_MAX_ROWS = {"intern": 100}
MAX_WHERE_CHARS = 4000
# Up to this many candidate rows (from a row index) the view is masked eagerly, all of them at once;
# beyond it, lazily, so masks run only on the rows a call returns.
EAGER_ROWS = 4096
# polars' SQL parser plans a subquery while parsing, and a subquery's FROM may name read_csv(url or path),
# read_parquet(...): parsing alone would open files and URLs the agent names. Every relation starts with
# one of these keywords right after an opening parenthesis (comments are refused, so none can sit in
# between); matched on the raw text, quotes ignored, so no quoting trick can hide one from this check.
_SUBQUERY = re.compile(
    r"\(\s*(?:select|from|values|with|table|insert|update|delete|merge|explain|show)\b", re.IGNORECASE
)
_TABLE_FUNCTION = re.compile(r"\b(?:read|scan)_\w+\s*\(", re.IGNORECASE)
_COMMENT = re.compile(r"--|/\*")
# Functions whose output size an argument sets: one call could make the gateway build gigabytes.
_AMPLIFIER = re.compile(r"\b(?:lpad|rpad|repeat|replicate|space)\s*\(", re.IGNORECASE)


class Denied(Exception):
    """Internal: which rule denied a call, with a reason that never carries a protected value."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def policy_view(
    cached: CertifiedFrame,
    contract: Contract,
    grant: Grant,
    *,
    level: str,
    secret: bytes,
    agent: str,
    dataset: str,
    decoded: bool = False,
    rows: pl.Series | None = None,
) -> tuple[pl.LazyFrame | pl.DataFrame, ColumnPlan, frozenset[str]]:
    """The policy view of a certified version: contract columns, withheld, masked, policy-filtered.

    Dictionary-encoded text columns stay encoded (fast equality filters) unless ``decoded``; the
    third value names the columns the caller must decode after collecting. ``secret`` is the audit key,
    from which the hash mask's per-purpose key is derived. ``rows`` (ascending row numbers, from a row
    index, :mod:`governance.read_index`) narrows the version to the rows that can match the filters; the
    filters still run over them in full. Up to :data:`EAGER_ROWS` of them, the view is computed at once
    (a ``DataFrame``); otherwise it is a ``LazyFrame``, so masks run only on the rows a call returns.
    """
    schema = cached.schema
    plan = view_plan(cached, contract, level, grant)
    frame = cached.frame
    small = rows is not None and isinstance(frame, pl.DataFrame) and rows.len() <= EAGER_ROWS
    encoded = frozenset() if decoded or small else cached.encoded - set(plan.masks)
    to_text = cached.encoded - encoded  # masks work on text, and so does a decoded view
    key = purpose_key(secret, grant.purpose)

    def stored(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.String) if name in to_text else pl.col(name)

    exprs = [
        mask_expr(name, plan.masks[name], schema[name], key, stored(name)).alias(name)
        if name in plan.masks
        else stored(name).alias(name)
        for name in plan.shown
    ]
    row_filter = grant.row_filter_expr()
    if row_filter is not None and not set(row_filter.meta.root_names()) <= set(plan.shown):
        raise Denied(
            "row_filter",
            f"the policy's row_filter for agent {agent} tests a column this agent does not "
            f"see in {dataset}, so no row can be shown. Fix the row_filter at {grant.source}.",
        )
    if rows is not None and isinstance(frame, pl.DataFrame):
        frame = frame[rows]
    # A few candidate rows from a row index are masked all at once (cheaper than planning a lazy query
    # over them); the filters still run over every one of them.
    view = (frame if small else frame.lazy()).select(exprs)
    if row_filter is not None:
        view = view.filter(row_filter)
    return view, plan, encoded


def view_plan(cached: CertifiedFrame, contract: Contract, level: str, grant: Grant) -> ColumnPlan:
    """Which of the stored version's columns the agent sees, masked or not, and which are withheld."""
    present = {name for name in cached.schema.names() if not name.startswith("_")}
    return column_plan(contract, level, grant, present)


def max_rows(level: str | None) -> int:
    """The most rows one call may return at ``level``: its own cap, else :data:`MAX_LIMIT`."""
    return min(LEVEL_MAX_ROWS.get(level or "", MAX_LIMIT), MAX_LIMIT)


def limit_rows(limit: int | None, level: str | None = None) -> int:
    """The rows a call may return: ``limit`` (default :data:`DEFAULT_LIMIT`) capped by the level's cap."""
    if limit is None:
        return min(DEFAULT_LIMIT, max_rows(level))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise Denied("limit", "limit must be a whole number of rows, 0 or more.")
    return min(limit, max_rows(level))


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
    """Compile the agent's filter; it may only test columns of its (masked) view.

    Comments, subqueries and table functions are refused before polars parses the text, because parsing
    a subquery already reads the files or URLs it names.
    """
    if not isinstance(where, str) or not where.strip() or len(where) > MAX_WHERE_CHARS:
        raise Denied(
            "where", f"where must be a SQL boolean expression of at most {MAX_WHERE_CHARS} characters."
        )
    if _COMMENT.search(where):
        raise Denied("where", "where may not contain SQL comments (-- or /*). Fix: remove the comment.")
    if _SUBQUERY.search(where) or _TABLE_FUNCTION.search(where):
        raise Denied(
            "where",
            "where may not contain a subquery or a table function (SELECT, FROM, VALUES, WITH, read_*): "
            "it can only test the view's own columns. Fix: filter with literals, e.g. IN ('a', 'b').",
        )
    if _AMPLIFIER.search(where):
        raise Denied(
            "where",
            "where may not use lpad, rpad or repeat: their output size is set by an argument. "
            "Fix: compare the column itself, e.g. with LIKE.",
        )
    try:
        expr = pl.sql_expr(where)
    except Exception:  # polars raises several error types for unparsable SQL; their text may echo values
        raise Denied("where", "where does not parse as a SQL boolean expression.") from None
    if "subplan" in str(expr):  # defence in depth: a subquery the check above did not foresee
        raise Denied("where", "where may not contain a subquery; it can only test the view's own columns.")
    if expr.meta.has_multiple_outputs():
        raise Denied("where", "where must be one boolean expression over named columns.")
    outside = sorted(set(expr.meta.root_names()) - set(plan.shown))
    if outside:
        # only names the contract declares are repeated back: anything else may be a value typed as a name
        names = [n if n in plan.withheld else "(a name this dataset does not declare)" for n in outside]
        withheld = [n for n in outside if n in plan.withheld]
        why = "withheld from this agent" if withheld else "not in this agent's view"
        raise Denied("where", f"where tests {', '.join(names)}, {why}; it may only test the view's columns.")
    return expr


def run(
    view: pl.LazyFrame | pl.DataFrame, condition: pl.Expr | None, columns: list[str], limit: int
) -> pl.DataFrame:
    """The agent's query over its view: rows passing ``condition``, ``columns`` of them, at most ``limit``."""
    try:
        query = view.filter(condition) if condition is not None else view
        result = query.select(columns).head(limit)
        return result.collect() if isinstance(result, pl.LazyFrame) else result
    except (
        pl.exceptions.PolarsError
    ) as exc:  # e.g. comparing text to a number; polars' message may echo values
        raise Denied(
            "query", f"the query could not run ({type(exc).__name__}); check the where clause's types."
        ) from None
