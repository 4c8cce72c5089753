"""Row indexes on certified versions held in memory: an agent's equality filter without a full scan.

An agent's typical read is a predicate on one column that returns a few hundred rows of millions
(``customer_id = 'C000123'``). Scanning the whole version for it costs tens of milliseconds, which on a
small machine serving many agents at once is the whole latency budget. A certified version never
changes, so the gateway builds, once and on first use, a hash index per column an agent filters by
equality: the 64-bit hash of every value, sorted, with the row each came from.

The index only narrows where to look. :func:`candidate_rows` returns every row whose value hashes like
the literal (a superset of the rows equal to it), in table order; the caller then runs the complete
policy view, row filter and the agent's own predicate over those rows, exactly as it would over the
whole version. A hash collision costs a few extra rows to test, never a wrong answer; an expression the
index does not understand (anything but ``column = literal`` terms joined by AND) means a full scan.
The index is never used for masked columns: their predicates run on the masked value.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import polars as pl

MAX_INDEXED_COLUMNS = 4  # per version: an index costs 12 bytes a row
_SEED = 0


def equality_terms(expr: pl.Expr) -> list[tuple[str, str | int]]:
    """The ``column = literal`` terms that must all hold for ``expr`` to be true (AND-ed at the top).

    Only string and integer literals are taken; anything else in the expression is left to the full
    predicate, which always runs afterwards. An expression that cannot be read gives no terms.
    """
    try:
        tree = json.loads(expr.meta.serialize(format="json"))
    except Exception:  # an expression polars cannot serialise: no index, a full scan
        return []
    if not _row_local(tree):
        return []  # an aggregate or window would see only the candidate rows: its answer would change
    terms: list[tuple[str, str | int]] = []
    _collect(tree, terms)
    return terms


# Inside a function node, anything that looks at other rows (polars' names for them).
_ACROSS_ROWS = (
    "Agg",
    "Over",
    "Len",
    "Window",
    "Rolling",
    "Cum",
    "Shift",
    "Diff",
    "Rank",
    "Unique",
    "Distinct",
    "Duplicated",
    "Any",
    "All",
    "Arg",
    "Mode",
    "Slice",
    "Gather",
    "Sort",
    "Filter",
    "Explode",
    "Implode",
    "Fill",
    "Interpolate",
    "Count",
    "First",
    "Last",
    "Nth",
    "Index",
)


def _row_local(node: Any) -> bool:
    """Whether an expression's value on a row depends on that row alone (else the index may not be used).

    Walks the serialised tree and accepts only node kinds known to be row-local (columns, literals,
    arithmetic and comparisons, casts, CASE, element-wise functions); anything else, including an
    aggregate, a window, ``count(*)`` or a node kind this code does not know, answers False.
    """
    if not isinstance(node, dict) or len(node) != 1:
        return False
    ((kind, body),) = node.items()
    if kind in ("Column", "Literal"):
        return True
    if kind == "BinaryExpr" and isinstance(body, dict):
        return _row_local(body.get("left")) and _row_local(body.get("right"))
    if kind == "Cast" and isinstance(body, dict):
        return _row_local(body.get("expr"))
    if kind == "Ternary" and isinstance(body, dict):
        return all(_row_local(body.get(k)) for k in ("predicate", "truthy", "falsy"))
    if kind == "Function" and isinstance(body, dict):
        function = json.dumps(body.get("function"))
        inputs = body.get("input")
        return (
            isinstance(inputs, list)
            and not any(word in function for word in _ACROSS_ROWS)
            and all(_row_local(i) for i in inputs)
        )
    return False


def _collect(node: Any, terms: list[tuple[str, str | int]]) -> None:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if not isinstance(binary, dict):
        return
    op = binary.get("op")
    if op in ("And", "LogicalAnd"):
        _collect(binary.get("left"), terms)
        _collect(binary.get("right"), terms)
        return
    if op != "Eq":
        return
    for column_side, literal_side in (("left", "right"), ("right", "left")):
        column = _column(binary.get(column_side))
        literal = _literal(binary.get(literal_side))
        if column is not None and literal is not None:
            terms.append((column, literal))
            return


def _column(node: Any) -> str | None:
    if isinstance(node, dict) and isinstance(node.get("Column"), str):
        return str(node["Column"])
    return None


def _literal(node: Any) -> str | int | None:
    literal = node.get("Literal") if isinstance(node, dict) else None
    if not isinstance(literal, dict):
        return None
    scalar = literal.get("Scalar") or literal.get("Dyn")
    if not isinstance(scalar, dict) or len(scalar) != 1:
        return None
    ((kind, value),) = scalar.items()
    if kind == "String" and isinstance(value, str):
        return value
    if kind == "Int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _indexable(dtype: pl.DataType, literal: str | int) -> bool:
    """Only where ``column = literal`` means plain value equality: text to text, integer to integer."""
    if isinstance(literal, str):
        return dtype == pl.String
    return dtype.is_integer()


@dataclass
class _HashIndex:
    hashes: pl.Series  # sorted 64-bit hashes of the column's values
    rows: pl.Series  # the row each hash came from

    def rows_for(self, literal_hash: int) -> pl.Series:
        if literal_hash >= 2**64 - 1:  # no hash above it: its run ends with the index
            lo = int(self.hashes.search_sorted(literal_hash, side="left"))
            return self.rows.slice(lo).sort()
        # one search for where the hash's run starts and where the next hash's would (it ends there)
        bounds = self.hashes.search_sorted(pl.Series([literal_hash, literal_hash + 1], dtype=pl.UInt64))
        lo, hi = int(bounds[0]), int(bounds[1])
        return self.rows.slice(lo, hi - lo).sort()


@dataclass
class RowIndexes:
    """The hash indexes of one in-memory certified version, built on first use of each column."""

    frame: pl.DataFrame
    schema: pl.Schema  # the table's own types (text columns may be held Categorical in ``frame``)
    _indexes: dict[str, _HashIndex] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def candidate_rows(self, terms: list[tuple[str, str | int]], usable: set[str]) -> pl.Series | None:
        """Row numbers (ascending) that may satisfy every term, or None when no term can use an index.

        ``usable`` names the columns whose stored value is what the predicate sees (shown, unmasked).
        """
        best: pl.Series | None = None
        for column, literal in terms:
            dtype = self.schema.get(column)
            if column not in usable or dtype is None or not _indexable(dtype, literal):
                continue
            index = self._index(column)
            if index is None:
                continue
            try:
                probe = pl.Series([literal]).cast(dtype, strict=True).hash(seed=_SEED)[0]
            except Exception:  # the literal does not fit the column's type (e.g. out of range)
                continue
            rows = index.rows_for(int(probe))
            if best is None or rows.len() < best.len():
                best = rows
        return best

    def _index(self, column: str) -> _HashIndex | None:
        with self._lock:
            index = self._indexes.get(column)
            if index is None:
                if len(self._indexes) >= MAX_INDEXED_COLUMNS:
                    return None
                values = self.frame.get_column(column)
                if values.dtype != self.schema[column]:
                    values = values.cast(self.schema[column])  # hash what agents compare: the stored type
                hashes = values.hash(seed=_SEED)
                order = hashes.arg_sort()
                index = _HashIndex(hashes=hashes.gather(order), rows=order)
                self._indexes[column] = index
            return index

    def indexed_columns(self) -> list[str]:
        with self._lock:
            return sorted(self._indexes)

    def estimated_size(self) -> int:
        with self._lock:
            return sum(
                int(i.hashes.estimated_size() + i.rows.estimated_size()) for i in self._indexes.values()
            )
