"""The whole code location loads, with the asset, check and job keys the contracts imply."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from schemas import load_contracts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def definitions(assay_env: Path) -> dg.Definitions:
    from pipelines.definitions import defs

    return defs()  # type: ignore[operator]


def test_every_contract_has_landing_and_published_assets(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "erp/orders/landing",
        "erp/orders/published",
        "crm/accounts/landing",
        "crm/accounts/published",
    }


def test_published_assets_carry_owners_kinds_tags_and_column_schema(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["crm", "accounts", "published"]))
    assert list(node.owners) == ["sales-ops-lead@example.com", "team:crm-platform"]
    assert {"polars", "pandera", "deltalake"} <= set(node.kinds)
    assert node.tags["classification"] == "restricted"
    schema = node.metadata["dagster/column_schema"]
    tags = {c.name: c.tags for c in schema.columns}
    assert tags["national_id"] == {"classification": "restricted", "pii": "national_id"}
    assert tags["billing_country"]["classification"] == "public"


def test_every_rule_is_an_asset_check_blocking_per_contract(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    contracts = {c.id: c for c in load_contracts(REPO / "schemas" / "contracts")}
    orders = contracts["erp.orders"]
    key = dg.AssetKey(["erp", "orders", "published"])
    checks = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys if k.asset_key == key}
    for rule in orders.rules:
        assert rule.name in checks
        assert checks[rule.name].blocking == (rule.severity == "error")
    for structural in ("rows_reconcile", "controls_reconcile", "quarantine_ratio", "staged_audit"):
        assert checks[structural].blocking
    assert not checks["records_readable"].blocking


def test_one_job_per_dataset_partitioned_by_delivery_for_files(definitions: dg.Definitions) -> None:
    orders = definitions.resolve_job_def("erp__orders")
    crm = definitions.resolve_job_def("crm__accounts")
    assert isinstance(orders.partitions_def, dg.DynamicPartitionsDefinition)
    assert crm.partitions_def is None


def test_dg_check_defs_passes(assay_env: Path) -> None:
    import os
    import subprocess
    import sys

    dg_cli = Path(sys.executable).parent / "dg"
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    result = subprocess.run(
        [str(dg_cli), "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_landing_retention_job_is_scheduled_daily(definitions: dg.Definitions) -> None:
    job = definitions.resolve_job_def("landing_retention")
    schedules = [s for s in definitions.schedules or [] if s.job_name == job.name]  # type: ignore[union-attr]
    assert len(schedules) == 1 and schedules[0].cron_schedule == "30 3 * * *"


def test_published_erp_orders_has_the_contract_schedule_as_freshness_policy(
    definitions: dg.Definitions,
) -> None:
    node = definitions.resolve_asset_graph().get(dg.AssetKey(["erp", "orders", "published"]))
    policy = node.freshness_policy
    assert policy is not None
    assert policy.deadline_cron == "0 7 * * *" and policy.timezone == "Europe/Berlin"
