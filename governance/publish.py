"""Write-audit-publish: a batch becomes visible only as a certified Delta version.

1. **Reconcile**: if the table's newest Delta version is not the certified one (a crash left an
   uncertified commit behind), restore the certified state first, so nothing uncertified is built on.
2. **Write** the batch's valid rows as one Delta commit: a file batch replaces its predecessor's rows
   by predicate on ``_batch_id`` (a re-sent batch never duplicates); a SQL batch upserts by key. A large
   batch streams in as it is validated (:class:`RowStream`); checks that need its counts run between
   this step and the next (:func:`stage_rows`, then :func:`publish_staged` or :func:`withdraw`).
3. **Audit** the staged version: the batch's row count in the table equals the rows published, and
   the table's schema matches the contract (pandera, schema level).
4. **Publish**: one catalog transaction compare-and-swaps the certified version.

A crash between any two steps leaves the previous certified version current; the next run redoes
the batch on top of it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from polars.io.plugins import register_io_source

from governance.catalog import BatchRecord, Catalog
from governance.errors import GovernanceError
from schemas.validate import CompiledContract, schema_problems

BATCH_COLUMN = "_batch_id"
STATS_PROPERTY = "delta.dataSkippingStatsColumns"
PARQUET = WriterProperties(compression="ZSTD")  # half the size of the default (snappy), same CPU
# Rows per Parquet file, measured in memory: ~100 MB on disk at the ~10x ZSTD of ERP rows (delta-rs' target).
FILE_BYTES = 1 << 30
Checkpoint = Callable[[str], None]


@dataclass(frozen=True)
class Published:
    version: int
    certified_at: datetime
    rows: int


@dataclass(frozen=True)
class StagingFailed:
    version: int
    problems: list[str]


@dataclass
class RowStream:
    """A batch's valid rows arriving chunk by chunk, published as one Delta commit without holding them all.

    ``schema`` is the rows' polars schema (every chunk has it); ``rows`` counts the rows that went by.
    """

    schema: pl.Schema
    chunks: Iterable[pl.DataFrame]
    rows: int = 0


@dataclass(frozen=True)
class Staged:
    """A batch written as a Delta commit that nobody can see yet; ``certified`` is the version it builds on."""

    version: int
    certified: int | None
    rows: int


def _no_checkpoint(stage: str) -> None:
    return None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def reconcile_orphans(table: Path, certified: int | None) -> int | None:
    """Undo Delta commits newer than the certified version; return the version now current."""
    if not DeltaTable.is_deltatable(str(table)):
        return None
    dt = DeltaTable(str(table))
    if certified is None:
        if dt.count() > 0:
            dt.delete(commit_properties=_props({"assay.action": "discard-uncertified"}))
        return DeltaTable(str(table)).version()
    if dt.version() != certified:
        dt.restore(
            certified,
            commit_properties=_props(
                {"assay.action": "restore-certified", "assay.certified": str(certified)}
            ),
        )
    return DeltaTable(str(table)).version()


def _props(meta: dict[str, str]) -> CommitProperties:
    # Commit metadata holds ids only, never row values.
    return CommitProperties(custom_metadata=meta)


def stage(
    table: Path,
    frame: pl.DataFrame | RowStream,
    batch: BatchRecord,
    *,
    mode: Literal["replace", "upsert"],
    key: list[str],
    stats_columns: list[str] | None = None,
) -> int:
    """Write ``frame`` (valid rows) as one Delta commit tagged with the batch; return its version.

    ``stats_columns`` are the only columns whose min/max statistics the Delta log may hold: the log
    is metadata any Delta tool reads, so classified values must not appear in it (default: the batch
    column only). A :class:`RowStream` is written as it arrives (an upsert needs it whole).

    A replace writes the Parquet files itself (polars, as the rows arrive) and commits them with the
    predecessor's files removed, when every file holding the batch's rows holds only them; otherwise
    (and for an upsert) delta-rs writes the commit. Both give the same rows, schema and statistics.
    """
    meta = {"assay.batch": batch.batch_id, "assay.checksum": batch.checksum, "assay.run": batch.run_id or ""}
    stats = {STATS_PROPERTY: ",".join([*(stats_columns or []), BATCH_COLUMN])}
    existing: DeltaTable | None = None
    if DeltaTable.is_deltatable(str(table)):
        existing = DeltaTable(str(table))
        if existing.metadata().configuration.get(STATS_PROPERTY) != stats[STATS_PROPERTY]:
            existing.alter.set_table_properties(
                stats, commit_properties=_props({"assay.action": "stats-columns"})
            )
            existing = DeltaTable(str(table))
    if mode == "replace":
        rows = frame if isinstance(frame, RowStream) else RowStream(frame.schema, [frame])
        removed = _replaced_files(existing, rows.schema, batch.batch_id)
        if removed is not None:
            return _commit_files(table, existing, rows, batch.batch_id, removed, meta, stats)
    data: pa.Table | pa.RecordBatchReader
    if isinstance(frame, RowStream):
        data = _batches(frame, batch.batch_id)
        if mode == "upsert":
            data = data.read_all()
    else:
        data = frame.with_columns(pl.lit(batch.batch_id, pl.String).alias(BATCH_COLUMN)).to_arrow()
    if existing is None:
        table.parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(table),
            data,
            mode="append",
            commit_properties=_props(meta),
            configuration=stats,
            writer_properties=PARQUET,
        )
    elif mode == "replace":
        write_deltalake(
            str(table),
            data,
            mode="overwrite",
            predicate=f"{BATCH_COLUMN} = {_quote(batch.batch_id)}",
            commit_properties=_props(meta),
            writer_properties=PARQUET,
        )
    else:
        on = " AND ".join(f"t.{k} = s.{k}" for k in key)
        (
            DeltaTable(str(table))
            .merge(data, predicate=on, source_alias="s", target_alias="t", commit_properties=_props(meta))
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    return DeltaTable(str(table)).version()


def _batches(stream: RowStream, batch_id: str) -> pa.RecordBatchReader:
    """The stream's chunks, tagged with the batch, as Arrow record batches of one schema."""
    tag = pl.lit(batch_id, pl.String).alias(BATCH_COLUMN)
    schema = pl.DataFrame(schema=stream.schema).with_columns(tag).to_arrow().schema

    def batches() -> Iterator[pa.RecordBatch]:
        for chunk in stream.chunks:
            stream.rows += chunk.height
            table = chunk.with_columns(tag).to_arrow()
            yield from (table if table.schema == schema else table.cast(schema)).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


# -- a replace as Parquet files of our own -----------------------------------------------------------
# delta-rs' writer takes ~50% more CPU than polars' on the same rows, and the rows must first become
# Arrow record batches for it. Here polars writes the files as the chunks arrive and one Delta commit adds
# them with the statistics delta-rs would have written (tests/governance/test_publish_files.py).

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


def _replaced_files(
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


def _commit_files(
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
                commit_properties=_props(meta),
            )
        else:
            existing.create_write_transaction(
                [*added, *removed], mode="append", schema=arrow, commit_properties=_props(meta)
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


def audit_staged(
    table: Path, version: int, batch: BatchRecord, compiled: CompiledContract, rows_published: int
) -> list[str]:
    """Blocking checks on the staged version; an empty list means it may be certified."""
    staged = pl.scan_delta(str(table), version=version)
    problems = schema_problems(compiled, staged)
    in_table = staged.filter(pl.col(BATCH_COLUMN) == batch.batch_id).select(pl.len()).collect().item()
    if in_table != rows_published:
        problems.append(
            f"staged version {version} holds {in_table} rows of batch {batch.batch_id}, "
            f"expected {rows_published}. Fix: rerun; the batch is re-staged from its landed file."
        )
    return problems


def table_rows(table: Path, version: int) -> int:
    return int(pl.scan_delta(str(table), version=version).select(pl.len()).collect().item())


def write_audit_publish(
    catalog: Catalog,
    table: Path,
    compiled: CompiledContract,
    batch: BatchRecord,
    valid: pl.DataFrame,
    *,
    rows_read: int,
    rows_quarantined: int,
    mode: Literal["replace", "upsert"],
    checkpoint: Checkpoint = _no_checkpoint,
) -> Published | StagingFailed:
    """Stage, audit and certify one batch's valid rows (see the module docstring)."""
    staged = stage_rows(catalog, table, compiled, batch, valid, mode=mode)
    return publish_staged(
        catalog,
        table,
        compiled,
        batch,
        staged,
        rows_read=rows_read,
        rows_quarantined=rows_quarantined,
        checkpoint=checkpoint,
    )


def stage_rows(
    catalog: Catalog,
    table: Path,
    compiled: CompiledContract,
    batch: BatchRecord,
    valid: pl.DataFrame | RowStream,
    *,
    mode: Literal["replace", "upsert"],
) -> Staged:
    """Steps 1 and 2: restore the certified state, write the batch's valid rows as one (invisible) commit."""
    contract = compiled.contract
    state = catalog.dataset(contract.id)
    if state is None:
        raise GovernanceError(
            f"dataset {contract.id} is not registered in the catalog. Fix: run it through "
            "the pipeline, which registers every contract."
        )
    certified = state.certified_version
    reconcile_orphans(table, certified)
    unclassified = [
        c.name for c in contract.columns if c.pii is None and c.classification in ("public", "internal")
    ]
    version = stage(table, valid, batch, mode=mode, key=contract.primary_key, stats_columns=unclassified)
    rows = valid.rows if isinstance(valid, RowStream) else valid.height
    return Staged(version=version, certified=certified, rows=rows)


def publish_staged(
    catalog: Catalog,
    table: Path,
    compiled: CompiledContract,
    batch: BatchRecord,
    staged: Staged,
    *,
    rows_read: int,
    rows_quarantined: int,
    checkpoint: Checkpoint = _no_checkpoint,
) -> Published | StagingFailed:
    """Steps 3 and 4: record the staged version, audit it, and certify it by compare-and-swap."""
    version = staged.version
    catalog.stage_batch(
        batch,
        delta_version=version,
        rows_read=rows_read,
        rows_published=staged.rows,
        rows_quarantined=rows_quarantined,
    )
    checkpoint("staged")
    problems = audit_staged(table, version, batch, compiled, staged.rows)
    if problems:
        return StagingFailed(version, problems)
    checkpoint("audited")
    rows = table_rows(table, version)
    at = catalog.certify(
        batch,
        expected_version=staged.certified,
        new_version=version,
        rows=rows,
        business_date=batch.business_date,
    )
    checkpoint("certified")
    return Published(version=version, certified_at=at, rows=rows)


def withdraw(table: Path, staged: Staged) -> None:
    """Undo a staged commit whose batch will not be published: the table is back at its certified state."""
    reconcile_orphans(table, staged.certified)
