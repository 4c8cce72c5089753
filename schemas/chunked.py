"""Validating a batch chunk by chunk, with the verdicts validating it whole would give.

Two things about a batch cannot be seen in one chunk of it: whether a key occurs twice anywhere in the
batch (``unique``), and the counts its checks are judged on. :class:`DuplicateKeys` gathers the typed
values of every unique column in a first pass over the batch; :class:`ValidationTally` adds up each
chunk's :class:`~schemas.validate.Validation`, keeping a few quarantined rows per rule for previews.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from schemas.parse import TextFormat, dtype_of, parse_expr
from schemas.validate import CompiledContract, Validation, reason_check

SAMPLE_ROWS = 3  # quarantined rows kept per rule, as ``batch_checks`` shows them


class DuplicateKeys:
    """The values of each unique column that occur more than once in a whole batch.

    Feed it every record of the batch (as raw text, chunk by chunk, readable or not: the batch-wide
    rule counts them all), then pass :meth:`duplicated` to :func:`~schemas.validate.validate`.
    """

    def __init__(self, compiled: CompiledContract, fmt: TextFormat) -> None:
        unique = {r.column for r, _ in compiled.checks if r.kind == "unique"}
        self.columns = [c for c in compiled.contract.columns if c.name in unique]
        self.fmt = fmt
        self._values: dict[str, list[pl.Series]] = {c.name: [] for c in self.columns}

    @property
    def names(self) -> list[str]:
        """The raw columns :meth:`add` needs."""
        return [c.name for c in self.columns]

    def add(self, raw: pl.DataFrame) -> None:
        typed = raw.select([parse_expr(c, self.fmt).alias(c.name) for c in self.columns])
        for c in self.columns:
            self._values[c.name].append(typed.get_column(c.name).drop_nulls())

    def duplicated(self) -> dict[str, pl.Series]:
        """Per unique column, each value that occurs more than once in the batch (once each)."""
        out = {}
        for c in self.columns:
            parts = self._values.pop(c.name)
            out[c.name] = _duplicates(parts) if parts else pl.Series(c.name, [], dtype=dtype_of(c))
            self._values[c.name] = []
        return out


def _duplicates(parts: list[pl.Series]) -> pl.Series:
    """Values occurring more than once across ``parts``, found by their 64-bit hashes, then confirmed.

    Sorting the hashes needs a fraction of the memory and time a hash table of the values would.
    A value is a candidate when its hash occurs twice; two different values sharing a hash are told
    apart by comparing the (few) candidates themselves, so the answer is exact.
    """
    hashes = [p.hash() for p in parts]
    ordered = pl.concat(hashes).sort()
    twice = ordered.filter(ordered == ordered.shift(1)).unique().implode()
    candidates = pl.concat([p.filter(h.is_in(twice)) for p, h in zip(parts, hashes, strict=True)])
    return candidates.filter(candidates.is_duplicated()).unique().sort()


@dataclass
class ValidationTally:
    """A batch's validation added up chunk by chunk: what ``batch_checks`` needs of a :class:`Validation`.

    ``quarantine`` holds only a sample: for every rule, the first :data:`SAMPLE_ROWS` rows that broke it.
    """

    compiled: CompiledContract
    valid_rows: int = 0
    quarantined_rows: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    quarantine: pl.DataFrame = field(default_factory=pl.DataFrame)
    _sampled: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.valid_rows + self.quarantined_rows

    def add(self, result: Validation) -> None:
        self.valid_rows += result.valid.height
        self.quarantined_rows += result.quarantine.height
        for name, n in result.failures.items():
            self.failures[name] = self.failures.get(name, 0) + n
        self._sample(result.quarantine)

    def _sample(self, quarantine: pl.DataFrame) -> None:
        """Keep the first rows (in batch order) that broke each rule, up to :data:`SAMPLE_ROWS` per rule."""
        wanted = {(rule.column, reason_check(rule)) for rule, _ in self.compiled.checks}
        wanted = {k for k in wanted if self._sampled.get(k, 0) < SAMPLE_ROWS}
        if not wanted or quarantine.height == 0:
            return
        hits = (
            quarantine.lazy()
            .select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), pl.col("reasons"))
            .explode("reasons")
            .select(
                "row",
                pl.col("reasons").struct.field("column").alias("column"),
                pl.col("reasons").struct.field("check").alias("check"),
            )
            .group_by("column", "check", maintain_order=True)
            .head(SAMPLE_ROWS)
            .collect()
        )
        rows: set[int] = set()
        for (column, check), group in hits.group_by("column", "check", maintain_order=True):
            key = (str(column), str(check))
            if key not in wanted:
                continue
            taken = group.get_column("row").head(SAMPLE_ROWS - self._sampled.get(key, 0)).to_list()
            self._sampled[key] = self._sampled.get(key, 0) + len(taken)
            rows.update(taken)
        if rows:
            picked = quarantine[sorted(rows)]
            self.quarantine = picked if self.quarantine.height == 0 else pl.concat([self.quarantine, picked])
