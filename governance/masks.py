"""What each autonomy level sees of a column: shown, masked, or withheld; and the masks as polars expressions.

Rules, per column of a dataset's contract:

- **withheld** (not in the view at all): its classification ranks above the level's cap
  (:data:`governance.identity.LEVEL_CAP`), or the agent's policy denies it.
- **masked** with the contract's mask: it holds personal data (``pii`` set) and the level is
  ``intern`` or ``junior``. Contracts classify personal data ``confidential`` or higher, so for an
  ``intern`` such columns are withheld before masking matters; a ``senior`` sees them unmasked.
- **masked** with ``hash`` for an ``intern`` when it is an identifier (ODCS ``primaryKey: true``, or the
  column customProperty ``identifier: true``; ``identifier: false`` opts a key out): interns can still
  join on it within their purpose but never see it.
- shown as stored otherwise.

Masks are vectorised expressions, except ``hash``: keyed HMAC-SHA256 has no polars kernel, so it runs
per value in Python through an element-wise ``map_batches`` (marked element-wise, so filters and limits
are still pushed below it and only the rows an agent gets are hashed).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from governance.identity import LEVEL_CAP
from governance.policy import Grant
from schemas.contract import PREFIX_MASK, Column, Contract, classification_rank

MASKED_LEVELS = ("intern", "junior")
IDENTIFIER_MASKED_LEVELS = ("intern",)
REDACTED = "[REDACTED]"
PREFIX_DEFAULT_CHARS = 3


@dataclass(frozen=True)
class ColumnPlan:
    """For one agent and dataset: the columns shown (in contract order), their masks, and those withheld."""

    shown: tuple[str, ...]
    masks: dict[str, str] = field(default_factory=dict)
    withheld: dict[str, str] = field(default_factory=dict)  # column -> "classification" | "policy"
    identifiers: frozenset[str] = frozenset()  # masked because they identify (intern), not as personal data


def column_plan(contract: Contract, level: str, grant: Grant, present: set[str] | None = None) -> ColumnPlan:
    """Apply the level's cap, the grant's column lists and the masking rule to every contract column.

    ``present`` limits the plan to the columns the stored table actually has.
    """
    cap = classification_rank(LEVEL_CAP[level])
    keys = identifier_columns(contract) if level in IDENTIFIER_MASKED_LEVELS else frozenset()
    shown: list[str] = []
    masks: dict[str, str] = {}
    withheld: dict[str, str] = {}
    identifiers: set[str] = set()
    for column in contract.columns:
        if present is not None and column.name not in present:
            continue
        if classification_rank(column.classification) > cap:
            withheld[column.name] = "classification"
        elif not grant.allows_column(column.name):
            withheld[column.name] = "policy"
        else:
            shown.append(column.name)
            mask = column_mask(column, level)
            if mask is None and column.name in keys:
                mask = "hash"
                identifiers.add(column.name)
            if mask is not None:
                masks[column.name] = mask
    return ColumnPlan(shown=tuple(shown), masks=masks, withheld=withheld, identifiers=frozenset(identifiers))


def identifier_columns(contract: Contract) -> frozenset[str]:
    """The contract's identifier columns: ``primaryKey: true`` or customProperty ``identifier: true``.

    ``identifier: false`` takes a primary key out (a meaningless surrogate key, say).
    """
    return frozenset(c.name for c in contract.columns if c.identifier)


def column_mask(column: Column, level: str) -> str | None:
    """The mask this level gets for a shown column, or None when it sees the stored value."""
    if column.pii is None or level not in MASKED_LEVELS:
        return None
    mask = column.mask or "hash"
    return None if mask == "none" else mask


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """The hash mask's key for one purpose: equal values join within a purpose, never across purposes."""
    return hmac.new(secret, b"assay-mask:" + purpose.encode("utf-8"), hashlib.sha256).digest()


def mask_expr(name: str, mask: str, dtype: pl.DataType, key: bytes, col: pl.Expr | None = None) -> pl.Expr:
    """The expression that replaces column ``name`` (of ``dtype``) with its masked form; nulls stay null.

    ``col`` is the column's value as stored (default ``pl.col(name)``; e.g. a dictionary-encoded column
    cast back to text).
    """
    col = pl.col(name) if col is None else col
    if mask == "redact":
        if dtype == pl.String:
            return pl.when(col.is_null()).then(None).otherwise(pl.lit(REDACTED)).alias(name)
        return _null(col, name)
    if mask == "hash":
        return col.cast(pl.String).map_batches(_hmac_series(key), return_dtype=pl.String, is_elementwise=True)
    if mask == "partial":
        return _partial(col.cast(pl.String)).alias(name)
    if mask == "null":
        return _null(col, name)
    if mask == "month":
        if dtype.is_temporal() and dtype != pl.Time and dtype != pl.Duration:
            return col.dt.truncate("1mo").alias(name)
        return _null(col, name)  # nothing date-like to truncate: show nothing rather than the value
    prefix = PREFIX_MASK.fullmatch(mask)
    if prefix is not None:
        return postcode_prefix(col, int(prefix.group(1)) if prefix.group(1) else None).alias(name)
    if mask == "none":
        return col
    raise ValueError(f"column {name}: mask {mask!r} is not known")


def _null(col: pl.Expr, name: str) -> pl.Expr:
    """Null of the column's own type."""
    return pl.when(pl.lit(False)).then(col).alias(name)


def postcode_prefix(col: pl.Expr, chars: int | None = None) -> pl.Expr:
    """Generalise a postcode to its prefix; a value the prefix would show whole becomes null.

    Surrounding whitespace is dropped first. ``chars=None`` (mask ``prefix``) keeps the outward code when
    the value has one (the part before the first space: UK ``SW1A 1AA`` -> ``SW1A``, Canada ``K1A 0B1`` ->
    ``K1A``) and otherwise the first :data:`PREFIX_DEFAULT_CHARS` characters (US ``94103`` -> ``941``, DE
    ``10115`` -> ``101``). ``chars=N`` (mask ``prefix:N``) keeps at most N characters, never past the first
    space (DE with ``prefix:2``: ``10115`` -> ``10``). A value no longer than what would be kept (``941``,
    ``AB``), and an empty or blank one, becomes null: showing it would not generalise it.
    """
    s = col.cast(pl.String).str.strip_chars()
    outward = s.str.extract(r"^(\S+)", 1)
    if chars is None:
        kept = pl.when(s.str.contains(r"\s")).then(outward).otherwise(s.str.slice(0, PREFIX_DEFAULT_CHARS))
    else:
        kept = outward.str.slice(0, chars)
    return pl.when(s.str.len_chars() > kept.str.len_chars()).then(kept).otherwise(pl.lit(None, pl.String))


def _partial(s: pl.Expr) -> pl.Expr:
    """Keep the last 4 characters and star the rest; values of 4 characters or fewer are starred whole."""
    n = s.str.len_chars()
    stars = pl.lit("*").repeat_by(n).list.join("")
    return pl.when(n > 4).then(s.str.slice(-4).str.pad_start(n, "*")).otherwise(stars)


SMALL_BATCH = 1024  # up to this many values, hashing one by one beats finding the distinct ones first


def _hmac_series(key: bytes) -> Callable[[pl.Series], pl.Series]:
    keyed = hmac.new(key, digestmod=hashlib.sha256)  # the key schedule once; each value starts from a copy

    def digest(value: str) -> str:
        h = keyed.copy()
        h.update(value.encode("utf-8"))
        return h.digest()[:8].hex()  # = hexdigest()[:16]

    def hash_values(values: pl.Series) -> pl.Series:
        if values.len() <= SMALL_BATCH:  # the rows one read returns
            seen: dict[str, str] = {}
            out = [
                None if v is None else seen.get(v) or seen.setdefault(v, digest(v)) for v in values.to_list()
            ]
            return pl.Series(values.name, out, dtype=pl.String)
        # Each distinct value is hashed once: a filter on a masked column hashes the whole version, and
        # real columns repeat (emails, customer numbers), so this is what keeps such a read affordable.
        distinct = values.drop_nulls().unique()
        digests = pl.Series([digest(v) for v in distinct.to_list()], dtype=pl.String)
        return values.replace_strict(distinct, digests, default=None, return_dtype=pl.String).alias(
            values.name
        )

    return hash_values
