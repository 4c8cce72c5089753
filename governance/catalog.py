"""The catalog: which dataset versions exist, which one is certified, and what happened to each batch.

The catalog database is the single source of truth for what agents may read. Certifying a version is
a compare-and-swap on ``datasets.certified_version`` inside one transaction, so two publishers can
never both win, and a Delta commit that a crash left uncertified is never visible.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from governance.catalog_schema import batches, datasets, versions
from governance.errors import PublishConflict
from governance.store import reading

_MIGRATED: set[str] = set()


def migrate(engine: Engine) -> None:
    """Bring the catalog schema to the newest Alembic revision (idempotent, once per process)."""
    key = str(engine.url)
    if key in _MIGRATED:
        return
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    _MIGRATED.add(key)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DatasetState:
    id: str
    status: str
    status_reason: str | None
    certified_version: int | None
    certified_at: datetime | None
    certified_batch: str | None
    latest_business_date: date | None
    rows: int
    quarantined: int
    business_owner: str
    operations_owner: str
    contract_version: str


@dataclass(frozen=True)
class BatchRecord:
    id: int
    dataset_id: str
    batch_id: str
    checksum: str
    source_file: str | None
    business_date: date | None
    rows_read: int | None
    rows_published: int | None
    rows_quarantined: int | None
    outcome: str
    reasons: list[dict[str, Any]]
    run_id: str | None
    delta_version: int | None


_DATASET = select(datasets).where(datasets.c.id == bindparam("id"))


class Catalog:
    """Reads and writes the catalog tables. All writes are short transactions.

    Certifying and rejecting a batch append their audit record in the same transaction, so the audit
    trail never misses a certification (``audit_key`` keys the chain's periodic anchors).
    """

    def __init__(self, engine: Engine, audit_key: bytes | None = None) -> None:
        migrate(engine)
        self.engine = engine
        self.audit_key = audit_key

    def _audit_outcome(
        self,
        conn: Connection,
        batch: BatchRecord,
        outcome: str,
        reasons: list[dict[str, Any]],
        detail: dict[str, Any],
    ) -> None:
        from governance.audit import record_batch_outcome  # audit imports this module

        record_batch_outcome(
            conn,
            batch.dataset_id,
            batch.batch_id,
            outcome,
            reasons,
            detail={"checksum": batch.checksum, "run_id": batch.run_id, **detail},
            anchor_key=self.audit_key,
        )

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- datasets ---------------------------------------------------------------------------------
    def register_dataset(
        self,
        dataset_id: str,
        *,
        contract_version: str,
        contract_checksum: str,
        business_owner: str,
        operations_owner: str,
    ) -> None:
        """Create the dataset's row or update its contract facts (never its certified version)."""
        values = dict(
            contract_version=contract_version,
            contract_checksum=contract_checksum,
            business_owner=business_owner,
            operations_owner=operations_owner,
            updated_at=now(),
        )
        with self.begin() as conn:
            exists = conn.execute(select(datasets.c.id).where(datasets.c.id == dataset_id)).first()
            if exists:
                conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(**values))
            else:
                conn.execute(
                    insert(datasets).values(
                        id=dataset_id, status="uncertified", rows=0, quarantined=0, **values
                    )
                )

    def dataset(self, dataset_id: str, conn: Connection | None = None) -> DatasetState | None:
        """The dataset's catalog state, or None; on ``conn`` when given (the caller's transaction)."""
        if conn is None:
            with reading(self.engine) as own:
                return self.dataset(dataset_id, own)
        row = conn.execute(_DATASET, {"id": dataset_id}).mappings().first()
        return _dataset_state(row) if row else None

    def datasets(self) -> list[DatasetState]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.id)).mappings().all()
        return [_dataset_state(r) for r in rows]

    def mark_stale(self, dataset_id: str, reason: str) -> None:
        """Flag a dataset whose newest batch failed; agents keep reading the certified version."""
        with self.begin() as conn:
            conn.execute(
                update(datasets)
                .where(datasets.c.id == dataset_id)
                .values(status="stale", status_reason=reason, updated_at=now())
            )

    # -- batches ----------------------------------------------------------------------------------
    def batch_by_checksum(self, dataset_id: str, checksum: str) -> BatchRecord | None:
        with reading(self.engine) as conn:
            row = (
                conn.execute(
                    select(batches).where(batches.c.dataset_id == dataset_id, batches.c.checksum == checksum)
                )
                .mappings()
                .first()
            )
        return _batch(row) if row else None

    def batches(self, dataset_id: str | None = None) -> list[BatchRecord]:
        query = select(batches).order_by(batches.c.id)
        if dataset_id is not None:
            query = query.where(batches.c.dataset_id == dataset_id)
        with reading(self.engine) as conn:
            return [_batch(r) for r in conn.execute(query).mappings().all()]

    def start_batch(
        self,
        dataset_id: str,
        *,
        batch_id: str,
        checksum: str,
        source_file: str | None,
        business_date: date | None,
        run_id: str,
    ) -> BatchRecord:
        """Record that a delivery is being ingested, or take over the record of an interrupted attempt."""
        with self.begin() as conn:
            row = (
                conn.execute(
                    select(batches).where(batches.c.dataset_id == dataset_id, batches.c.checksum == checksum)
                )
                .mappings()
                .first()
            )
            values = dict(
                batch_id=batch_id,
                source_file=source_file,
                business_date=business_date,
                outcome="running",
                run_id=run_id,
                reasons=None,
                started_at=now(),
                finished_at=None,
                delta_version=None,
                rows_read=None,
                rows_published=None,
                rows_quarantined=None,
            )
            if row is None:
                conn.execute(insert(batches).values(dataset_id=dataset_id, checksum=checksum, **values))
            else:
                conn.execute(update(batches).where(batches.c.id == row["id"]).values(**values))
            row = (
                conn.execute(
                    select(batches).where(batches.c.dataset_id == dataset_id, batches.c.checksum == checksum)
                )
                .mappings()
                .one()
            )
        return _batch(row)

    def stage_batch(
        self,
        batch: BatchRecord,
        *,
        delta_version: int,
        rows_read: int,
        rows_published: int,
        rows_quarantined: int,
    ) -> None:
        with self.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch.id)
                .values(
                    outcome="staged",
                    delta_version=delta_version,
                    rows_read=rows_read,
                    rows_published=rows_published,
                    rows_quarantined=rows_quarantined,
                )
            )

    def reject_batch(
        self,
        batch: BatchRecord,
        *,
        reasons: list[dict[str, Any]],
        rows_read: int | None,
        rows_published: int | None,
        rows_quarantined: int | None,
    ) -> None:
        """A batch that cannot be trusted: nothing of it becomes visible; the dataset is flagged stale."""
        summary = "; ".join(r["message"] for r in reasons)[:2000]
        with self.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch.id)
                .values(
                    outcome="rejected",
                    reasons=json.dumps(reasons),
                    rows_read=rows_read,
                    rows_published=rows_published,
                    rows_quarantined=rows_quarantined,
                    finished_at=now(),
                )
            )
            conn.execute(
                update(datasets)
                .where(datasets.c.id == batch.dataset_id)
                .values(
                    status="stale",
                    status_reason=f"batch {batch.batch_id} rejected: {summary}",
                    updated_at=now(),
                )
            )
            self._audit_outcome(
                conn,
                batch,
                "rejected",
                reasons,
                {"rows_read": rows_read, "rows_quarantined": rows_quarantined},
            )

    def request_replay(self, dataset_id: str, batch_id: str, *, reason: str, actor: str) -> list[BatchRecord]:
        """Let a rejected batch be ingested again (after a contract fix): an explicit, audited act.

        The rejected deliveries of ``batch_id`` are marked ``replay``; the next run processes them as new.
        """
        from governance.audit import append_in  # audit imports this module

        with self.begin() as conn:
            rows = (
                conn.execute(
                    select(batches).where(
                        batches.c.dataset_id == dataset_id,
                        batches.c.batch_id == batch_id,
                        batches.c.outcome == "rejected",
                    )
                )
                .mappings()
                .all()
            )
            if not rows:
                return []
            conn.execute(
                update(batches).where(batches.c.id.in_([r["id"] for r in rows])).values(outcome="replay")
            )
            append_in(
                conn,
                actor=actor,
                action="batch.replay",
                dataset=dataset_id,
                decision="allow",
                detail={"batch_id": batch_id, "checksums": [r["checksum"] for r in rows], "reason": reason},
                anchor_key=self.audit_key,
            )
        return [_batch(r) for r in rows]

    def certify(
        self,
        batch: BatchRecord,
        *,
        expected_version: int | None,
        new_version: int,
        rows: int,
        business_date: date | None,
    ) -> datetime:
        """Compare-and-swap the certified version from ``expected_version`` to ``new_version``.

        One transaction: the dataset's pointer moves, the batch is marked certified, batches it
        replaced are marked replaced, and the version is recorded. Raises :class:`PublishConflict`
        if another publisher moved the pointer first.
        """
        at = now()
        with self.begin() as conn:
            current = conn.execute(
                select(datasets.c.certified_version, datasets.c.latest_business_date).where(
                    datasets.c.id == batch.dataset_id
                )
            ).one()
            cond = (
                datasets.c.certified_version.is_(None)
                if expected_version is None
                else datasets.c.certified_version == expected_version
            )
            latest = current.latest_business_date
            if business_date is not None and (latest is None or business_date > latest):
                latest = business_date  # a backfill adds rows; it never moves "current" backwards
            result = conn.execute(
                update(datasets)
                .where(datasets.c.id == batch.dataset_id, cond)
                .values(
                    certified_version=new_version,
                    certified_at=at,
                    certified_batch=batch.batch_id,
                    latest_business_date=latest,
                    status="certified",
                    status_reason=None,
                    rows=rows,
                    updated_at=at,
                )
            )
            if result.rowcount != 1:
                raise PublishConflict(
                    f"dataset {batch.dataset_id}: certified version moved from {expected_version} to "
                    f"{current.certified_version} while batch {batch.batch_id} was being published. "
                    "Fix: rerun; the batch is re-published on top of the new version."
                )
            conn.execute(
                update(batches)
                .where(batches.c.id == batch.id)
                .values(outcome="certified", delta_version=new_version, finished_at=at)
            )
            conn.execute(
                update(batches)
                .where(
                    batches.c.dataset_id == batch.dataset_id,
                    batches.c.batch_id == batch.batch_id,
                    batches.c.id != batch.id,
                    batches.c.outcome == "certified",
                )
                .values(outcome="replaced")
            )
            conn.execute(
                insert(versions).values(
                    dataset_id=batch.dataset_id,
                    delta_version=new_version,
                    batch_id=batch.batch_id,
                    certified_at=at,
                    rows=rows,
                )
            )
            quarantined = (
                select(func.coalesce(func.sum(batches.c.rows_quarantined), 0))
                .where(batches.c.dataset_id == batch.dataset_id, batches.c.outcome == "certified")
                .scalar_subquery()
            )
            conn.execute(
                update(datasets).where(datasets.c.id == batch.dataset_id).values(quarantined=quarantined)
            )
            counts = conn.execute(
                select(batches.c.rows_read, batches.c.rows_published, batches.c.rows_quarantined).where(
                    batches.c.id == batch.id
                )
            ).one()
            self._audit_outcome(
                conn,
                batch,
                "certified",
                [],
                {
                    "delta_version": new_version,
                    "rows": rows,
                    "rows_read": counts.rows_read,
                    "rows_published": counts.rows_published,
                    "rows_quarantined": counts.rows_quarantined,
                },
            )
        return at


def _dataset_state(row: Any) -> DatasetState:
    return DatasetState(
        id=row["id"],
        status=row["status"],
        status_reason=row["status_reason"],
        certified_version=row["certified_version"],
        certified_at=_utc(row["certified_at"]),
        certified_batch=row["certified_batch"],
        latest_business_date=row["latest_business_date"],
        rows=int(row["rows"]),
        quarantined=int(row["quarantined"]),
        business_owner=row["business_owner"],
        operations_owner=row["operations_owner"],
        contract_version=row["contract_version"],
    )


def _batch(row: Any) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        dataset_id=row["dataset_id"],
        batch_id=row["batch_id"],
        checksum=row["checksum"],
        source_file=row["source_file"],
        business_date=row["business_date"],
        rows_read=row["rows_read"],
        rows_published=row["rows_published"],
        rows_quarantined=row["rows_quarantined"],
        outcome=row["outcome"],
        reasons=json.loads(row["reasons"]) if row["reasons"] else [],
        run_id=row["run_id"],
        delta_version=row["delta_version"],
    )


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; the catalog only ever stores UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
