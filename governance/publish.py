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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake

from governance import delta_files
from governance.catalog import BatchRecord, Catalog
from governance.delta_files import BATCH_COLUMN, STATS_PROPERTY
from governance.errors import GovernanceError
from schemas.validate import CompiledContract, schema_problems

PARQUET = WriterProperties(compression="ZSTD")  # half the size of the default (snappy), same CPU
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
        removed = delta_files.replaced_files(existing, rows.schema, batch.batch_id)
        if removed is not None:
            return delta_files.commit_files(table, existing, rows, batch.batch_id, removed, meta, stats)
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
