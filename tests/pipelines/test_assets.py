"""The assets through ``dg.materialize``: what a data engineer sees in the Dagster UI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from pipelines.demo import seed
from pipelines.factory import dataset_definitions, partitions_name
from pipelines.resources import AssayResource
from schemas import Contract, load_contracts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def seeded(assay_env: Path) -> tuple[Path, dict[str, Any]]:
    return assay_env, seed(assay_env)


@pytest.fixture
def contracts() -> dict[str, Contract]:
    return {c.id: c for c in load_contracts(REPO / "schemas" / "contracts")}


def _materialize(
    contract: Contract, home: Path, instance: dg.DagsterInstance, partition: str | None = None
) -> dg.ExecuteInJobResult:
    assets = dataset_definitions(contract).assets
    if partition is not None:
        instance.add_dynamic_partitions(partitions_name(contract), [partition])
    return dg.materialize(
        list(assets),
        instance=instance,
        partition_key=partition,  # type: ignore[arg-type]
        resources={"assay": AssayResource(home=str(home))},
        raise_on_error=False,
    )


def _published(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    mats = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key is not None and m.asset_key.path[-1] == "published"
    ]
    assert len(mats) == 1
    return {k: v.value for k, v in mats[0].materialization.metadata.items()}  # type: ignore[union-attr]


def _checks(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_faulty_file_publishes_valid_rows_and_reports_quarantine(seeded, contracts) -> None:  # type: ignore[no-untyped-def]
    home, expected = seeded
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(contracts["erp.orders"], home, instance, "orders_20261102.csv")
    assert result.success
    meta = _published(result)
    faults = expected["erp.orders"]["faults"]
    assert meta["rows_quarantined"] == len({f["line"] for f in faults})
    assert meta["rows_read"] == meta["rows_published"] + meta["rows_quarantined"]
    assert meta["dagster/row_count"] == meta["rows_published"]
    assert meta["outcome"] == "certified"
    columns = {c.name: c.tags for c in meta["dagster/column_schema"].columns}
    assert columns["sales_rep_email"] == {"classification": "confidential", "pii": "email"}
    checks = _checks(result)
    assert checks["rows_reconcile"].passed and checks["controls_reconcile"].passed
    assert checks["records_readable"].passed is False  # two field-count faults: a WARN, not blocking
    assert checks["records_readable"].severity == dg.AssetCheckSeverity.WARN
    assert checks["order_id_not_null"].metadata["failed_rows"].value == 1
    sample = checks["quantity_gt"].metadata["failure_sample"].value
    assert sample and all(
        v == "[MASKED]"
        for row in sample
        for k, v in row["values"].items()
        if k in ("amount", "sales_rep_email") and v is not None
    )


def test_unreconciled_file_fails_the_run_with_a_blocking_check(seeded, contracts) -> None:  # type: ignore[no-untyped-def]
    home, _ = seeded
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(contracts["erp.orders"], home, instance, "orders_20261103.csv")
    assert not result.success
    checks = _checks(result)
    assert checks["controls_reconcile"].passed is False
    assert checks["controls_reconcile"].blocking
    failure = result.failure_data_for_node("erp__orders__published")
    assert failure is not None and failure.user_failure_data is not None
    outcome = failure.user_failure_data.metadata["outcome"].value
    assert outcome["outcome"] == "rejected"
    assert "orders_20261103.csv line" in outcome["reasons"][0]["message"]
    assert "Fix:" in outcome["reasons"][0]["message"]


def test_crm_table_lands_with_undeclared_columns_counted_and_no_canary_in_metadata(seeded, contracts) -> None:  # type: ignore[no-untyped-def]
    home, expected = seeded
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(contracts["crm.accounts"], home, instance)
    assert result.success
    landing = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == "landing"][0]
    landing_meta = landing.materialization.metadata  # type: ignore[union-attr]
    assert landing_meta["undeclared_columns"].value >= 270
    meta = _published(result)
    assert meta["rows_quarantined"] == len(expected["crm.accounts"]["faults"])
    everything = json.dumps([str(e) for e in result.all_events]) + json.dumps(
        [str(r) for r in instance.get_records_for_run(result.run_id).records]
    )
    for canary in expected["canaries"]:
        assert canary not in everything, "a canary value reached Dagster events or metadata"
