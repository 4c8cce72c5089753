"""Quarantined rows: kept whole (source text, origin, reasons), shown only masked.

Each batch's quarantined rows are one Parquet file under ``ASSAY_HOME/quarantine/<dataset>/``,
named by the delivery's checksum, so a rerun rewrites the same file rather than adding to it.
They are never part of a certified version and never reachable by an agent. Previews mask every
value of a column classified above ``internal`` or holding personal data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from schemas.contract import Contract, classification_rank

MASKED = "[MASKED]"


def write_quarantine(
    folder: Path, checksum: str, batch_id: str, run_id: str, source: str, rows: pl.DataFrame
) -> Path:
    """Persist one batch's quarantined rows atomically (temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{checksum}.parquet"
    tmp = path.with_suffix(".tmp")
    rows.with_columns(
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(run_id).alias("_run_id"),
        pl.lit(source).alias("_source_file"),
    ).write_parquet(tmp)
    tmp.replace(path)
    return path


class QuarantineWriter:
    """One batch's quarantined rows, streamed to its Parquet file chunk by chunk (memory stays flat).

    The file appears under its final name only when :meth:`close` succeeds, as with
    :func:`write_quarantine`; :meth:`abort` leaves nothing behind.
    """

    def __init__(self, folder: Path, checksum: str, batch_id: str, run_id: str, source: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{checksum}.parquet"
        self.tmp = self.path.with_suffix(".tmp")
        self.tags = {"_batch_id": batch_id, "_run_id": run_id, "_source_file": source}
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, rows: pl.DataFrame) -> None:
        table = rows.with_columns([pl.lit(v).alias(k) for k, v in self.tags.items()]).to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        self._writer.write_table(table.cast(self._writer.schema))
        self.rows += rows.height

    def close(self) -> Path:
        if self._writer is None:
            raise ValueError(f"{self.path}: no rows were written, not even an empty frame with the schema")
        self._writer.close()
        self.tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


def read_quarantine(folder: Path, checksums: list[str] | None = None) -> pl.DataFrame:
    """Quarantined rows of a dataset (optionally only the given deliveries), unmasked: for replay only."""
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if checksums is not None:
        files = [f for f in files if f.stem in set(checksums)]
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def must_mask(contract: Contract, column: str) -> bool:
    try:
        col = contract.column(column)
    except KeyError:
        return True  # not a declared column: never shown
    return col.pii is not None or classification_rank(col.classification) > classification_rank("internal")


def masked_preview(contract: Contract, rows: pl.DataFrame, limit: int | None = None) -> list[dict[str, Any]]:
    """Quarantined rows as ``{batch, file, line, reasons, values}`` with classified values masked."""
    if rows.height == 0:
        return []
    if limit is not None:
        rows = rows.head(limit)
    shown = [c.name for c in contract.columns if c.name in rows.columns]
    values = rows.select(
        [
            (
                pl.when(pl.col(c).is_not_null()).then(pl.lit(MASKED)).otherwise(None)
                if must_mask(contract, c)
                else pl.col(c)
            ).alias(c)
            for c in shown
        ]
    )
    out = []
    for meta, vals in zip(
        rows.select("_batch_id", "_source_file", "_source_line", "reasons").iter_rows(named=True),
        values.iter_rows(named=True),
        strict=True,
    ):
        out.append(
            {
                "batch": meta["_batch_id"],
                "file": meta["_source_file"],
                "line": meta["_source_line"],
                "reasons": meta["reasons"],
                "values": vals,
            }
        )
    return out
