"""Replaying a rejected batch after a contract fix, and landing retention, through the CLI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Any]:
    """The demo ERP contract copied, so a test can 'fix' it; only the ERP dataset."""
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "erp.orders.yaml").write_text((REPO / "schemas/contracts/erp.orders.yaml").read_text())
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    values = {
        "ASSAY_HOME": str(tmp_path / "assay"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "ASSAY_CONTRACTS": str(contracts),
        "ASSAY_CATALOG_URL": "",
        "ASSAY_FAULT": "",
        "ASSAY_AUDIT_KEY": "22" * 32,
    }
    runner = CliRunner()
    assert runner.invoke(main, ["demo", "seed"], env=values).exit_code == 0
    return {"env": values, "contracts": contracts, "home": tmp_path / "assay"}


def test_rejected_batch_replays_only_when_asked_and_the_replay_is_audited(env: dict[str, Any]) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["run", "--json"], env=env["env"])
    assert first.exit_code == 4
    again = json.loads(runner.invoke(main, ["run", "--json"], env=env["env"]).stdout)
    assert {r["outcome"] for r in again} == {"skipped"}  # a rejected delivery is not retried on its own
    # The owner decides the trailer mismatch is tolerable only by fixing the source; here we "fix the
    # contract" by dropping the amount control, then replay the rejected batch explicitly.
    path = env["contracts"] / "erp.orders.yaml"
    path.write_text(path.read_text().replace(", amountTotal: {field: 2, column: amount}", ""))
    replayed = runner.invoke(
        main, ["replay", "erp.orders", "ORD20261103", "--reason", "trailer total dropped"], env=env["env"]
    )
    assert replayed.exit_code == 0, replayed.output
    assert "certified" in replayed.stdout
    missing = runner.invoke(main, ["replay", "erp.orders", "NOPE", "--reason", "x"], env=env["env"])
    assert missing.exit_code == 2
    engine = create_engine(f"sqlite:///{env['home'] / 'catalog.db'}")
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(text("SELECT action FROM audit_log ORDER BY seq"))]
    assert actions.count("batch.replay") == 1
    assert actions.index("batch.replay") < len(actions) - 1 and actions[-1] == "batch.certify"


def test_landing_prune_removes_only_expired_settled_deliveries_and_says_so(env: dict[str, Any]) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["run"], env=env["env"]).exit_code == 4
    landing = env["home"] / "landing" / "erp.orders"
    deliveries = sorted(landing.iterdir())
    assert len(deliveries) == 4
    old = time.time() - 91 * 86400
    for f in deliveries[0].iterdir():
        os.utime(f, (old, old))
    dry = runner.invoke(main, ["landing", "prune", "--dry-run", "--json"], env=env["env"])
    assert json.loads(dry.stdout)["dry_run"] is True
    assert [r["checksum"] for r in json.loads(dry.stdout)["removed"]] == [deliveries[0].name]
    assert deliveries[0].exists()
    done = runner.invoke(main, ["landing", "prune"], env=env["env"])
    assert done.exit_code == 0 and "removed erp.orders batch" in done.stdout
    assert not deliveries[0].exists() and all(d.exists() for d in deliveries[1:])
