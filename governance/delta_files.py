"""A replace written as Parquet files of our own and committed to Delta with deltalake's transaction API.

delta-rs' writer takes ~50% more CPU than polars' on the same rows, and the rows must first become Arrow
record batches for it. Here polars writes the files as the chunks arrive (a few files of about
:data:`FILE_BYTES` in memory each, never the whole batch) and one Delta commit adds them, with the
predecessor batch's files removed and the statistics delta-rs would have written
(``tests/governance/test_publish_files.py`` proves the two give the same table). :func:`replaced_files`
says when this is safe; :func:`governance.publish.stage` falls back to delta-rs otherwise.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from polars.io.plugins import register_io_source

if TYPE_CHECKING:
    from governance.publish import RowStream

BATCH_COLUMN = "_batch_id"
STATS_PROPERTY = "delta.dataSkippingStatsColumns"
# Rows per Parquet file, measured in memory: ~100 MB on disk at the ~10x ZSTD of ERP rows (delta-rs' target).
FILE_BYTES = 1 << 30

# Column types whose Parquet form and log statistics are known to match delta-rs' (the validator's types).
_OWN_TYPES = (pl.String, pl.Boolean, pl.Int64, pl.Float64, pl.Date)


def _own_files_hold(schema: pl.Schema) -> bool:
    return all(
        isinstance(dtype, _OWN_TYPES)
        or dtype == pl.Datetime("us", "UTC")
        or (isinstance(dtype, pl.Decimal) and dtype.precision <= 18)
        for dtype in schema.values()
    )


def _tagged_schema(schema: pl.Schema) -> pl.Schema:
    return pl.DataFrame(schema=schema).with_columns(pl.lit(None, pl.String).alias(BATCH_COLUMN)).schema


def replaced_files(
    existing: DeltaTable | None, schema: pl.Schema, batch_id: str
) -> list[RemoveAction] | None:
    """The files a replace of ``batch_id`` removes, or None when the replace needs delta-rs' writer.

    Files of our own do when each file holding the batch's rows holds only them (its ``_batch_id``
    statistics say so: every replace writes such files, an upsert's merge may mix batches), the table
    uses the plain protocol with no table feature, and the rows have the table's schema.
    """
    tagged = _tagged_schema(schema)
    if not _own_files_hold(tagged):
        return None
    if existing is None:
        return []
    protocol = existing.protocol()
    if (protocol.min_reader_version, protocol.min_writer_version) != (1, 2):
        return None
    if set(existing.metadata().configuration) != {STATS_PROPERTY}:
        return None
    arrow = pl.DataFrame(schema=tagged).to_arrow().schema
    if existing.schema().to_json() != DeltaSchema.from_arrow(arrow).to_json():
        return None
    files = pl.DataFrame(existing.get_add_actions(flatten=True))
    low, high, nulls = f"min.{BATCH_COLUMN}", f"max.{BATCH_COLUMN}", f"null_count.{BATCH_COLUMN}"
    if files.is_empty():
        return []
    if not {low, high, nulls, "num_records"} <= set(files.columns):
        return None
    only = (pl.col(low) == batch_id) & (pl.col(high) == batch_id) & (pl.col(nulls) == 0)
    none = (pl.col(high) < batch_id) | (pl.col(low) > batch_id) | (pl.col(nulls) == pl.col("num_records"))
    files = files.select("path", "size_bytes", only=only.fill_null(False), none=none.fill_null(False))
    if not files.select((pl.col("only") | pl.col("none")).all()).item():
        return None
    now = int(time.time() * 1000)
    return [
        RemoveAction(path, True, now, size, {})
        for path, size in files.filter("only").select("path", "size_bytes").iter_rows()
    ]


def commit_files(
    table: Path,
    existing: DeltaTable | None,
    rows: RowStream,
    batch_id: str,
    removed: list[RemoveAction],
    meta: dict[str, str],
    config: dict[str, str],
) -> int:
    """Write the rows as Parquet files and commit them, the predecessor's files removed, as one version."""
    schema = _tagged_schema(rows.schema)
    arrow = pl.DataFrame(schema=schema).to_arrow().schema
    table.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        added = _write_files(table, rows, batch_id, config[STATS_PROPERTY].split(","), written)
        if existing is None:
            create_table_with_add_actions(
                str(table),
                DeltaSchema.from_arrow(arrow),
                added,
                mode="append",
                configuration=config,
                commit_properties=CommitProperties(custom_metadata=meta),
            )
        else:
            existing.create_write_transaction(
                [*added, *removed],
                mode="append",
                schema=arrow,
                commit_properties=CommitProperties(custom_metadata=meta),
            )
    except BaseException:
        for path in written:  # nothing refers to them
            path.unlink(missing_ok=True)
        raise
    return DeltaTable(str(table)).version()


def _write_files(
    table: Path, rows: RowStream, batch_id: str, stats_columns: list[str], written: list[Path]
) -> list[AddAction]:
    """The stream's rows, tagged with the batch, as Parquet files of about FILE_BYTES (in memory) at most."""
    schema = _tagged_schema(rows.schema)
    columns = [c for c in schema if c in stats_columns]
    summary = [pl.len().alias("rows"), *(e for c in columns for e in _summary(c))]
    pending = _tagged_chunks(rows, batch_id)
    added: list[AddAction] = []
    for first in pending:
        path = table / f"part-{len(added):05d}-{uuid.uuid4()}-c000.zstd.parquet"
        written.append(path)
        summaries: list[pl.DataFrame] = []
        source = _file_rows(first, pending, summary, summaries)
        # ZSTD level 1, as delta-rs compressed: polars' default (3) costs ~20% more CPU for ~3% less size.
        register_io_source(source, schema=schema).sink_parquet(path, compression="zstd", compression_level=1)
        stats = _file_stats(schema, columns, pl.concat(summaries))
        added.append(AddAction(path.name, path.stat().st_size, {}, int(time.time() * 1000), True, stats))
    return added


def _file_rows(
    first: pl.DataFrame,
    pending: Iterator[pl.DataFrame],
    summary: list[pl.Expr],
    summaries: list[pl.DataFrame],
) -> Callable[..., Iterator[pl.DataFrame]]:
    """A polars IO source of one file's rows: ``first``, then chunks of ``pending`` up to FILE_BYTES.

    Each chunk's ``summary`` (its statistics) goes to ``summaries``. The source serves a sink of every
    column, so polars asks it for no projection, predicate or row limit.
    """

    def rows(*_: object) -> Iterator[pl.DataFrame]:
        chunk: pl.DataFrame | None = first
        size = 0.0
        while chunk is not None:
            summaries.append(chunk.select(summary))
            size += chunk.estimated_size()
            yield chunk
            chunk = next(pending, None) if size < FILE_BYTES else None

    return rows


def _tagged_chunks(rows: RowStream, batch_id: str) -> Iterator[pl.DataFrame]:
    """The stream's non-empty chunks in its schema, tagged with the batch; counts every row that went by."""
    tag = pl.lit(batch_id, pl.String).alias(BATCH_COLUMN)
    for chunk in rows.chunks:
        rows.rows += chunk.height
        if chunk.height:
            typed = (
                chunk if chunk.schema == rows.schema else chunk.select(rows.schema.names()).cast(rows.schema)
            )
            yield typed.with_columns(tag)


def _summary(column: str) -> tuple[pl.Expr, ...]:
    value = pl.col(column)
    return (
        value.min().alias(f"min.{column}"),
        value.max().alias(f"max.{column}"),
        value.null_count().alias(f"nulls.{column}"),
    )


def _file_stats(schema: pl.Schema, columns: list[str], summaries: pl.DataFrame) -> str:
    """A file's statistics JSON from its chunks' summaries, as delta-rs writes it from Parquet's.

    Text is whole (PARQUET sets no truncation length), timestamps are cut to milliseconds, decimals
    with a scale become floats, infinite floats null, a float zero is -0.0 as a minimum and 0.0 as a
    maximum, NaN is left out, and an all-null column has a null count only.
    """
    exprs = [pl.col("rows").sum()]
    for c in columns:
        low, high = pl.col(f"min.{c}").min(), pl.col(f"max.{c}").max()
        if schema[c] == pl.Date:
            low, high = low.dt.strftime("%Y-%m-%d"), high.dt.strftime("%Y-%m-%d")
        elif isinstance(schema[c], pl.Datetime):
            low, high = _timestamp_text(low), _timestamp_text(high)
        exprs += [low.alias(f"min.{c}"), high.alias(f"max.{c}"), pl.col(f"nulls.{c}").sum()]
    row = summaries.select(exprs).row(0, named=True)
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    for c in columns:
        low, high = row[f"min.{c}"], row[f"max.{c}"]
        if low is not None and low == low:  # neither all null nor all NaN
            minimum[c], maximum[c] = _stat_value(low, schema[c], False), _stat_value(high, schema[c], True)
    stats = {
        "numRecords": row["rows"],
        "minValues": minimum,
        "maxValues": maximum,
        "nullCount": {c: row[f"nulls.{c}"] for c in columns},
    }
    return json.dumps(stats, ensure_ascii=False, separators=(",", ":"))


def _timestamp_text(value: pl.Expr) -> pl.Expr:
    micros = value.dt.microsecond()
    fraction = (
        pl.when(micros == 0)
        .then(pl.lit(""))
        .otherwise(pl.format(".{}", (micros // 1000).cast(pl.String).str.zfill(3)))
    )
    return pl.concat_str(value.dt.strftime("%Y-%m-%dT%H:%M:%S"), fraction, pl.lit("Z"))


def _stat_value(value: Any, dtype: pl.DataType, upper: bool) -> Any:
    if isinstance(value, Decimal):  # delta-rs: a whole number as such, else unscaled / 10^scale in f64
        scale = dtype.scale if isinstance(dtype, pl.Decimal) else 0
        unscaled = int(value.scaleb(scale))
        return unscaled if scale == 0 else float(unscaled) / float(10**scale)
    if isinstance(value, float):
        if value in (float("inf"), float("-inf")):
            return None
        return (0.0 if upper else -0.0) if value == 0 else value
    return value
