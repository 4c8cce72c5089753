"""Write-audit-publish on a real Delta table and a real catalog: what agents can see after each publish.

Agents read the Delta table only at the version the catalog certifies, so every test here asks the one
question that matters to them: what does the certified version hold? A re-sent batch must replace its
predecessor (never duplicate it), a backfill must not move "current" backwards, a commit a crash left
uncertified must never be visible, and two publishers must never both win.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from polars.testing import assert_frame_equal
from sqlalchemy import Engine, create_engine, func, select

from governance.catalog import BatchRecord, Catalog
from governance.catalog_schema import versions
from governance.errors import PublishConflict
from governance.publish import (
    BATCH_COLUMN,
    Published,
    StagingFailed,
    audit_staged,
    reconcile_orphans,
    stage,
    write_audit_publish,
)
from governance.store import catalog_engine
from schemas import CompiledContract, TextFormat, compile_contract, load_contract, validate

REPO = Path(__file__).resolve().parents[2]
CONTRACT = load_contract(REPO / "schemas" / "contracts" / "erp.orders.yaml")
COMPILED: CompiledContract = compile_contract(CONTRACT)
DATASET = CONTRACT.id


def orders(ids: list[int], *, status: str = "OPEN") -> pl.DataFrame:
    """Valid erp.orders rows, typed exactly as the validator hands them to publishing."""
    n = len(ids)
    raw = pl.DataFrame(
        {
            "order_id": [f"SO{i:08d}" for i in ids],
            "customer_id": ["C100001"] * n,
            "order_date": ["20261101"] * n,
            "sku": ["WIDGET-0001"] * n,
            "quantity": ["2,000"] * n,
            "unit_price": ["12,50"] * n,
            "amount": ["25,00"] * n,
            "currency": ["EUR"] * n,
            "status": [status] * n,
            "changed_at": ["20261101120000"] * n,
            "sales_rep_email": ["anna.schmidt@example-erp.com"] * n,
            "_source_line": list(range(2, n + 2)),
        }
    )
    result = validate(COMPILED, raw, TextFormat.of(CONTRACT))
    assert result.quarantine.height == 0, result.quarantine
    return result.valid


def checksum(tag: str) -> str:
    return tag.encode().hex().ljust(64, "0")[:64]


def new_catalog(engine: Engine) -> Catalog:
    """A real catalog with erp.orders registered, as the pipeline registers every contract."""
    catalog = Catalog(engine)
    catalog.register_dataset(
        DATASET,
        contract_version=CONTRACT.version,
        contract_checksum=CONTRACT.checksum,
        business_owner=CONTRACT.business_owner,
        operations_owner=CONTRACT.operations_owner,
    )
    return catalog


def start(catalog: Catalog, batch_id: str, content: str, business_date: date) -> BatchRecord:
    return catalog.start_batch(
        DATASET,
        batch_id=batch_id,
        checksum=checksum(content),
        source_file=f"{content}.csv",
        business_date=business_date,
        run_id=f"run-{content}",
    )


def loose_batch(record_id: int, batch_id: str) -> BatchRecord:
    """A batch record for staging without a catalog (``reconcile_orphans`` only looks at the table)."""
    return BatchRecord(
        id=record_id,
        dataset_id=DATASET,
        batch_id=batch_id,
        checksum=checksum(batch_id),
        source_file=f"{batch_id}.csv",
        business_date=None,
        rows_read=None,
        rows_published=None,
        rows_quarantined=None,
        outcome="running",
        reasons=[],
        run_id="test",
        delta_version=None,
    )


def publish(
    catalog: Catalog, table: Path, batch_id: str, content: str, frame: pl.DataFrame, business_date: date
) -> Published:
    batch = start(catalog, batch_id, content, business_date)
    outcome = write_audit_publish(
        catalog, table, COMPILED, batch, frame, rows_read=frame.height, rows_quarantined=0, mode="replace"
    )
    assert isinstance(outcome, Published), outcome
    return outcome


def certified(catalog: Catalog, table: Path) -> pl.DataFrame:
    """What an agent can read: the table at the catalog's certified version."""
    state = catalog.dataset(DATASET)
    assert state is not None and state.certified_version is not None
    return pl.read_delta(str(table), version=state.certified_version).sort("order_id")


def outcomes(catalog: Catalog) -> dict[str, str]:
    return {b.source_file or "": b.outcome for b in catalog.batches(DATASET)}


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Catalog:
    return new_catalog(catalog_engine(f"sqlite:///{tmp_path / 'catalog.db'}"))


@pytest.fixture
def pg_catalog(postgres_schema: str) -> Iterator[Catalog]:
    engine = create_engine(postgres_schema, pool_pre_ping=True)
    catalog = new_catalog(engine)
    yield catalog
    engine.dispose()


def _resend_replaces_in_one_commit(catalog: Catalog, table: Path) -> None:
    publish(catalog, table, "ORD20261101", "nov01", orders([1, 2, 3]), date(2026, 11, 1))
    first = publish(catalog, table, "ORD20261102", "nov02", orders([10, 11, 12, 13]), date(2026, 11, 2))

    # The ERP re-sends 2 November, corrected: one line dropped, one added, every status changed.
    resent = orders([10, 11, 14], status="SHIPPED")
    second = publish(catalog, table, "ORD20261102", "nov02-resent", resent, date(2026, 11, 2))

    assert second.version == first.version + 1, "the replacement must be exactly one Delta commit"
    history = DeltaTable(str(table)).history(1)[0]
    assert history["assay.batch"] == "ORD20261102"
    rows = certified(catalog, table)
    assert rows["order_id"].is_unique().all()
    assert rows["order_id"].to_list() == [f"SO{i:08d}" for i in (1, 2, 3, 10, 11, 14)]
    nov02 = rows.filter(pl.col(BATCH_COLUMN) == "ORD20261102")
    assert nov02["status"].to_list() == ["SHIPPED"] * 3, "the predecessor's rows must be gone"
    assert second.rows == rows.height == 6
    assert outcomes(catalog) == {
        "nov01.csv": "certified",
        "nov02.csv": "replaced",
        "nov02-resent.csv": "certified",
    }
    state = catalog.dataset(DATASET)
    assert state is not None
    assert (state.certified_version, state.rows, state.certified_batch) == (second.version, 6, "ORD20261102")


def _stale_certify_conflicts(catalog: Catalog, table: Path) -> None:
    """Two publishers both saw the same certified version; the second to certify must lose cleanly."""
    if (state := catalog.dataset(DATASET)) is None or state.certified_version is None:
        publish(catalog, table, "ORD20261101", "nov01", orders([1, 2]), date(2026, 11, 1))
    state = catalog.dataset(DATASET)
    assert state is not None
    stale = state.certified_version
    winner = publish(catalog, table, "ORD20261105", "nov05", orders([20, 21]), date(2026, 11, 5))
    loser = start(catalog, "ORD20261106", "nov06", date(2026, 11, 6))
    staged = stage(table, orders([22]), loser, mode="replace", key=CONTRACT.primary_key)
    catalog.stage_batch(loser, delta_version=staged, rows_read=1, rows_published=1, rows_quarantined=0)
    with catalog.engine.connect() as conn:
        recorded_before = conn.execute(select(func.count()).select_from(versions)).scalar_one()

    with pytest.raises(PublishConflict, match="Fix: rerun"):
        catalog.certify(
            loser,
            expected_version=stale,
            new_version=staged,
            rows=winner.rows + 1,
            business_date=date(2026, 11, 6),
        )

    after = catalog.dataset(DATASET)
    assert after is not None
    assert (after.certified_version, after.certified_batch) == (winner.version, "ORD20261105")
    assert (after.rows, after.latest_business_date) == (winner.rows, date(2026, 11, 5))
    assert outcomes(catalog)["nov06.csv"] == "staged", "the losing batch must not be marked certified"
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(versions)).scalar_one() == recorded_before
    assert "ORD20261106" not in certified(catalog, table)[BATCH_COLUMN].to_list()


def test_resent_batch_replaces_its_predecessor_in_one_commit(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    _resend_replaces_in_one_commit(sqlite_catalog, tmp_path / "warehouse" / DATASET)


def test_certify_with_a_stale_version_conflicts_and_changes_nothing(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    _stale_certify_conflicts(sqlite_catalog, tmp_path / "warehouse" / DATASET)


def test_publisher_racing_another_loses_without_certifying(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    """A second publisher certifies while the first is between audit and certify: the first must lose."""
    catalog, table = sqlite_catalog, tmp_path / "warehouse" / DATASET
    publish(catalog, table, "ORD20261101", "nov01", orders([1, 2]), date(2026, 11, 1))
    racer: list[Published] = []

    def race(stage_name: str) -> None:
        if stage_name == "audited" and not racer:
            racer.append(publish(catalog, table, "ORD20261104", "nov04", orders([7]), date(2026, 11, 4)))

    slow = start(catalog, "ORD20261102", "nov02", date(2026, 11, 2))
    with pytest.raises(PublishConflict):
        write_audit_publish(
            catalog,
            table,
            COMPILED,
            slow,
            orders([3, 4]),
            rows_read=2,
            rows_quarantined=0,
            mode="replace",
            checkpoint=race,
        )
    state = catalog.dataset(DATASET)
    assert state is not None and state.certified_version == racer[0].version
    assert outcomes(catalog)["nov02.csv"] != "certified"


def test_backfill_adds_rows_without_moving_current_backwards(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    catalog, table = sqlite_catalog, tmp_path / "warehouse" / DATASET
    publish(catalog, table, "ORD20261104", "nov04", orders([40, 41]), date(2026, 11, 4))
    backfill = publish(catalog, table, "ORD20261101", "nov01", orders([10, 11, 12]), date(2026, 11, 1))

    state = catalog.dataset(DATASET)
    assert state is not None
    assert state.latest_business_date == date(2026, 11, 4)
    assert state.certified_version == backfill.version
    assert certified(catalog, table).height == state.rows == 5
    assert certified(catalog, table)[BATCH_COLUMN].unique().sort().to_list() == ["ORD20261101", "ORD20261104"]


def test_orphan_commit_is_never_visible_and_the_next_publish_undoes_it(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    catalog, table = sqlite_catalog, tmp_path / "warehouse" / DATASET
    good = publish(catalog, table, "ORD20261101", "nov01", orders([1, 2, 3]), date(2026, 11, 1))
    visible = certified(catalog, table)

    # A run stages a batch, then dies before certifying it (its rows would replace nothing, only add).
    crashed = start(catalog, "ORD20261102", "nov02", date(2026, 11, 2))
    stage(table, orders([50, 51]), crashed, mode="replace", key=CONTRACT.primary_key)
    # ... and another stages a re-send of a certified batch that would wipe its rows.
    wiper = start(catalog, "ORD20261101", "nov01-bad", date(2026, 11, 1))
    orphan = stage(table, orders([99]), wiper, mode="replace", key=CONTRACT.primary_key)
    assert orphan > good.version
    assert DeltaTable(str(table)).version() == orphan

    state = catalog.dataset(DATASET)
    assert state is not None and state.certified_version == good.version
    assert_frame_equal(certified(catalog, table), visible)

    after = publish(catalog, table, "ORD20261103", "nov03", orders([30]), date(2026, 11, 3))
    rows = certified(catalog, table)
    assert rows["order_id"].to_list() == [f"SO{i:08d}" for i in (1, 2, 3, 30)]
    assert after.version == DeltaTable(str(table)).version()
    history = DeltaTable(str(table)).history()
    assert any(h.get("assay.action") == "restore-certified" for h in history)


def test_reconcile_orphans_restores_the_certified_state(tmp_path: Path) -> None:
    table = tmp_path / "warehouse" / DATASET
    assert reconcile_orphans(table, None) is None, "no table yet: nothing to undo"
    batch = loose_batch(1, "ORD1")

    # Nothing was ever certified: an orphan first commit is emptied.
    stage(table, orders([1, 2]), batch, mode="replace", key=CONTRACT.primary_key)
    current = reconcile_orphans(table, None)
    assert current is not None and pl.read_delta(str(table), version=current).height == 0

    certified_version = stage(table, orders([3, 4]), batch, mode="replace", key=CONTRACT.primary_key)
    expected = pl.read_delta(str(table), version=certified_version).sort("order_id")
    assert reconcile_orphans(table, certified_version) == certified_version, "nothing to undo: no new commit"
    other = loose_batch(2, "ORD2")
    stage(table, orders([5]), other, mode="replace", key=CONTRACT.primary_key)
    stage(table, orders([6]), batch, mode="replace", key=CONTRACT.primary_key)

    current = reconcile_orphans(table, certified_version)
    assert current is not None and current > certified_version
    assert DeltaTable(str(table)).version() == current
    assert_frame_equal(pl.read_delta(str(table), version=current).sort("order_id"), expected)


def test_staged_version_with_the_wrong_row_count_fails_the_audit(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    catalog, table = sqlite_catalog, tmp_path / "warehouse" / DATASET
    batch = start(catalog, "ORD20261101", "nov01", date(2026, 11, 1))
    version = stage(table, orders([1, 2, 3]), batch, mode="replace", key=CONTRACT.primary_key)

    assert audit_staged(table, version, batch, COMPILED, rows_published=3) == []
    problems = audit_staged(table, version, batch, COMPILED, rows_published=4)
    assert len(problems) == 1
    assert "holds 3 rows of batch ORD20261101, expected 4" in problems[0]
    assert "Fix:" in problems[0]


def test_staged_version_breaking_the_contract_schema_is_never_certified(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    catalog, table = sqlite_catalog, tmp_path / "warehouse" / DATASET
    batch = start(catalog, "ORD20261101", "nov01", date(2026, 11, 1))
    broken = orders([1, 2]).with_columns(pl.col("quantity").cast(pl.Float64))
    outcome = write_audit_publish(
        catalog, table, COMPILED, batch, broken, rows_read=2, rows_quarantined=0, mode="replace"
    )
    assert isinstance(outcome, StagingFailed)
    assert any("quantity" in p for p in outcome.problems)
    state = catalog.dataset(DATASET)
    assert state is not None and state.certified_version is None
    assert outcomes(catalog)["nov01.csv"] != "certified"


@pytest.mark.server
def test_postgres_catalog_resend_replaces_and_stale_certify_conflicts(
    pg_catalog: Catalog, tmp_path: Path
) -> None:
    table = tmp_path / "warehouse" / DATASET
    _resend_replaces_in_one_commit(pg_catalog, table)
    _stale_certify_conflicts(pg_catalog, table)
