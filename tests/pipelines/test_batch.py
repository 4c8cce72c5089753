"""One ERP delivery through ``pipelines.batch``, without Dagster: landing, exactly-once, rejection, checks.

The demo's nightly files are the deliveries: 1 November is clean, 2 November carries 11 planted faults,
3 November's trailer does not reconcile. What a user must notice: a landed file never changes, the same
content is ingested once, and a batch that cannot be trusted never moves what agents read.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors import file_checksum
from governance.catalog import Catalog
from governance.quarantine import read_quarantine
from governance.store import Store
from pipelines.batch import BatchOutcome, land_file, process
from pipelines.demo import seed
from pipelines.factory import check_names
from schemas import CompiledContract, Contract, compile_contract, load_contract

REPO = Path(__file__).resolve().parents[2]
CONTRACT_PATH = REPO / "schemas" / "contracts" / "erp.orders.yaml"
CONTRACT = load_contract(CONTRACT_PATH)
COMPILED = compile_contract(CONTRACT)
CLEAN, FAULTY, UNRECONCILED = "orders_20261101.csv", "orders_20261102.csv", "orders_20261103.csv"


def no_fault(stage: str) -> None:
    return None


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's ERP drop folder, seeded once for the module (never written to by the tests)."""
    home = tmp_path_factory.mktemp("seeded")
    seed(home)
    return home / "demo" / "erp" / "drop"


@pytest.fixture(scope="module")
def expected(drop: Path) -> dict[str, Any]:
    return json.loads((drop.parents[1] / "expected.json").read_text("utf-8"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(home=tmp_path / "assay", catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.fixture
def catalog(store: Store) -> Catalog:
    return registered(store, CONTRACT)


def registered(store: Store, contract: Contract) -> Catalog:
    catalog = Catalog(store.engine())
    catalog.register_dataset(
        contract.id,
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    return catalog


def ingest(store: Store, catalog: Catalog, path: Path, compiled: CompiledContract = COMPILED) -> BatchOutcome:
    landed = land_file(store, compiled.contract, path)
    return process(store, catalog, compiled, landed, run_id=f"test-{path.name}", checkpoint=no_fault)


def certified_rows(store: Store, catalog: Catalog) -> pl.DataFrame:
    state = catalog.dataset(CONTRACT.id)
    assert state is not None and state.certified_version is not None
    return pl.read_delta(str(store.table_path(CONTRACT.id)), version=state.certified_version).sort("order_id")


def test_landing_is_immutable_and_keyed_by_checksum(store: Store, drop: Path, tmp_path: Path) -> None:
    source = drop / CLEAN
    checksum, size = file_checksum(source)

    landed = land_file(store, CONTRACT, source)

    assert landed.checksum == checksum
    assert landed.path == store.landing / CONTRACT.id / checksum / CLEAN
    assert landed.path.read_bytes() == source.read_bytes()
    assert landed.path.stat().st_size == size
    assert stat.S_IMODE(landed.path.stat().st_mode) & 0o222 == 0, "a landed file must be read-only"
    assert not list(landed.path.parent.glob("*.part")), "no temporary copy may be left behind"

    before = landed.path.stat()
    again = land_file(store, CONTRACT, source)
    assert again == landed
    after = landed.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "second land is a no-op"

    # The same content delivered under another name lands beside it, under the same checksum.
    renamed = tmp_path / "orders_copy.csv"
    shutil.copyfile(source, renamed)
    copy = land_file(store, CONTRACT, renamed)
    assert copy.checksum == checksum and copy.path.parent == landed.path.parent


def test_same_content_twice_is_ingested_once(
    store: Store, catalog: Catalog, drop: Path, tmp_path: Path
) -> None:
    first = ingest(store, catalog, drop / CLEAN)
    assert (first.outcome, first.rows_read, first.rows_published, first.rows_quarantined) == (
        "certified",
        300,
        300,
        0,
    )
    state = catalog.dataset(CONTRACT.id)
    assert state is not None and state.certified_version == first.version and state.rows == 300
    rows = certified_rows(store, catalog)

    second = ingest(store, catalog, drop / CLEAN)
    renamed = tmp_path / "orders_resent_20261101.csv"  # same bytes, new name: still the same delivery
    shutil.copyfile(drop / CLEAN, renamed)
    third = ingest(store, catalog, renamed)

    for again in (second, third):
        assert again.outcome == "skipped"
        assert (again.rows_published, again.rows_quarantined) == (0, 0)
        assert again.reasons[0]["check"] == "exactly_once"
        assert "already ingested as batch ORD20261101 (certified)" in again.reasons[0]["message"]
    after = catalog.dataset(CONTRACT.id)
    assert after is not None and after.certified_version == first.version and after.rows == 300
    assert_frame_equal(certified_rows(store, catalog), rows)
    assert len(catalog.batches(CONTRACT.id)) == 1


def test_rejected_batch_never_moves_the_certified_version(store: Store, catalog: Catalog, drop: Path) -> None:
    ingest(store, catalog, drop / CLEAN)
    before = catalog.dataset(CONTRACT.id)
    assert before is not None and before.status == "certified"
    rows = certified_rows(store, catalog)

    outcome = ingest(store, catalog, drop / UNRECONCILED)

    assert outcome.outcome == "rejected"
    assert (outcome.rows_read, outcome.rows_published) == (296, 0)
    assert [r["check"] for r in outcome.reasons] == ["controls"]
    controls = [c for c in outcome.checks if c.name == "controls_reconcile"]
    assert len(controls) == 1 and not controls[0].passed and controls[0].blocking
    state = catalog.dataset(CONTRACT.id)
    assert state is not None
    assert (state.certified_version, state.certified_at, state.rows) == (
        before.certified_version,
        before.certified_at,
        before.rows,
    )
    assert state.status == "stale"
    assert state.status_reason is not None
    assert "ORD20261103" in state.status_reason
    assert f"{UNRECONCILED} line 298" in state.status_reason, state.status_reason
    assert "Fix:" in state.status_reason
    assert_frame_equal(certified_rows(store, catalog), rows)
    batch = next(b for b in catalog.batches(CONTRACT.id) if b.source_file == UNRECONCILED)
    assert batch.outcome == "rejected" and batch.reasons == outcome.reasons

    # A rejected delivery is not retried as is: the source must re-send it.
    assert ingest(store, catalog, drop / UNRECONCILED).outcome == "skipped"

    # The next good batch certifies again and clears the stale flag.
    nxt = ingest(store, catalog, drop / "orders_20261104.csv")
    assert nxt.outcome == "certified"
    state = catalog.dataset(CONTRACT.id)
    assert state is not None and state.status == "certified" and state.status_reason is None


def test_faulty_batch_quarantines_every_planted_fault_and_loses_nothing(
    store: Store, catalog: Catalog, drop: Path, expected: dict[str, Any]
) -> None:
    outcome = ingest(store, catalog, drop / FAULTY)

    assert outcome.outcome == "certified"
    assert outcome.rows_read == outcome.rows_published + outcome.rows_quarantined
    planted = [f for f in expected["erp.orders"]["faults"] if f["file"] == FAULTY]
    assert outcome.rows_quarantined == len(planted) == 11
    quarantined = read_quarantine(store.quarantine / CONTRACT.id)
    assert sorted(quarantined["_source_line"].to_list()) == sorted(f["line"] for f in planted)
    for fault in planted:
        reasons = quarantined.filter(pl.col("_source_line") == fault["line"])["reasons"].item().to_list()
        assert {"column": fault["column"], "check": fault["check"]} in reasons
    rows = certified_rows(store, catalog)
    assert rows.height == outcome.rows_published
    assert rows["order_id"].is_unique().all()
    assert set(rows["_source_line"].to_list()).isdisjoint(f["line"] for f in planted)


def test_quarantine_ratio_exceeded_rejects_the_batch_with_a_fix(
    store: Store, drop: Path, tmp_path: Path
) -> None:
    strict_path = tmp_path / "erp.orders.yaml"
    text = CONTRACT_PATH.read_text("utf-8")
    assert "maxRatio: 0.25" in text
    strict_path.write_text(text.replace("maxRatio: 0.25", "maxRatio: 0.01"), "utf-8")
    strict = compile_contract(load_contract(strict_path))
    catalog = registered(store, strict.contract)
    ingest(store, catalog, drop / CLEAN, strict)
    before = catalog.dataset(CONTRACT.id)
    assert before is not None

    outcome = ingest(store, catalog, drop / FAULTY, strict)

    assert outcome.outcome == "rejected"
    assert (outcome.rows_read, outcome.rows_published, outcome.rows_quarantined) == (304, 0, 11)
    assert [r["check"] for r in outcome.reasons] == ["quarantine_ratio"]
    message = outcome.reasons[0]["message"]
    assert "11 of 304 rows quarantined" in message and FAULTY in message
    assert "Fix:" in message and "maxRatio" in message
    state = catalog.dataset(CONTRACT.id)
    assert state is not None
    assert state.certified_version == before.certified_version and state.status == "stale"
    assert "quarantine" in (state.status_reason or "")
    # Nothing lost: the quarantined rows are kept for replay even though the batch was rejected.
    assert read_quarantine(store.quarantine / CONTRACT.id).height == 11
    assert "ORD20261102" not in certified_rows(store, catalog)["_batch_id"].to_list()


def test_batch_checks_cover_every_contract_rule_and_match_the_asset_checks(
    store: Store, catalog: Catalog, drop: Path
) -> None:
    outcome = ingest(store, catalog, drop / FAULTY)
    checks = {c.name: c for c in outcome.checks}

    assert len(checks) == len(outcome.checks), "check names must be unique"
    for rule in CONTRACT.rules:
        assert rule.name in checks, f"no batch check for rule {rule.name}"
        assert checks[rule.name].blocking == (rule.severity == "error")
        assert checks[rule.name].metadata["column"] == rule.column
    # Every check the published asset declares in Dagster is reported, and nothing else.
    assert set(checks) == {name for name, _, _ in check_names(CONTRACT)}
    assert {n: b for n, b, _ in check_names(CONTRACT)} == {n: c.blocking for n, c in checks.items()}

    assert checks["rows_reconcile"].passed
    assert checks["controls_reconcile"].passed
    assert checks["staged_audit"].passed
    assert not checks["records_readable"].passed and checks["records_readable"].severity == "WARN"
    failing_rules = {n for n, c in checks.items() if c.metadata.get("failed_rows")}
    assert {"currency_known", "status_known"} <= failing_rules
    status_sample = checks["status_known"].metadata["failure_sample"]
    # The sample shows which line broke the rule, with classified values masked.
    assert status_sample and all(s["values"]["sales_rep_email"] == "[MASKED]" for s in status_sample)


def test_undeclared_personal_data_blocks_certification_naming_column_and_detector(
    drop: Path, store: Store, tmp_path: Path, expected: dict[str, Any]
) -> None:
    """The owner forgot that sales_rep_email holds emails: classification drift rejects the batch."""
    text = CONTRACT_PATH.read_text("utf-8")
    forgetful = text.replace(
        "        classification: confidential\n        customProperties:\n          - property: piiType\n"
        "            value: email\n          - property: mask\n            value: hash\n",
        "        classification: internal\n",
    )
    assert forgetful != text
    path = tmp_path / "erp.orders.yaml"
    path.write_text(forgetful, "utf-8")
    contract = load_contract(path)
    catalog = registered(store, contract)
    outcome = ingest(store, catalog, drop / CLEAN, compile_contract(contract))
    assert outcome.outcome == "rejected"
    drift = next(c for c in outcome.checks if c.name == "classification_drift")
    assert not drift.passed and drift.blocking
    assert drift.metadata["drifts"][0]["column"] == "sales_rep_email"
    assert drift.metadata["drifts"][0]["detector"] == "email"
    everything = json.dumps([c.description for c in outcome.checks]) + json.dumps(outcome.reasons)
    for canary in expected["canaries"]:
        assert canary not in everything
    assert catalog.dataset(contract.id).certified_version is None  # type: ignore[union-attr]


def test_declared_personal_data_passes_classification(drop: Path, store: Store, catalog: Catalog) -> None:
    outcome = ingest(store, catalog, drop / CLEAN)
    drift = next(c for c in outcome.checks if c.name == "classification_drift")
    assert outcome.outcome == "certified" and drift.passed
    assert any("email" in e for e in drift.metadata["findings"]["sales_rep_email"])
