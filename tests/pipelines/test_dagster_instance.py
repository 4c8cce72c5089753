"""The shipped Dagster instance configurations load and record runs: SQLite by default, PostgreSQL too."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, text

from pipelines.demo import seed
from pipelines.factory import dataset_definitions
from pipelines.resources import AssayResource
from schemas import load_contract

REPO = Path(__file__).resolve().parents[2]


def _run_crm(instance: dg.DagsterInstance, home: Path) -> dg.ExecuteInJobResult:
    seed(home)
    contract = load_contract(REPO / "schemas" / "contracts" / "crm.accounts.yaml")
    assets = list(dataset_definitions(contract).assets or [])
    return dg.materialize(assets, instance=instance, resources={"assay": AssayResource(home=str(home))})  # type: ignore[arg-type]


def test_default_instance_is_sqlite_under_dagster_home(tmp_path: Path) -> None:
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    result = _run_crm(instance, tmp_path / "assay")
    assert result.success
    assert instance.get_run_by_id(result.run_id) is not None
    assert "Sqlite" in type(instance.run_storage).__name__
    assert (tmp_path / "history" / "runs.db").exists()


def test_postgres_instance_variant_records_runs(tmp_path: Path, postgres_url: str) -> None:
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = (
            postgres_url.replace("postgresql+psycopg://", "postgresql+psycopg2://").rsplit("/", 1)[0]
            + f"/{name}"
        )
        shutil.copy(REPO / "dagster_home" / "dagster.postgres.yaml", tmp_path / "dagster.yaml")
        mp = pytest.MonkeyPatch()
        mp.setenv("DAGSTER_PG_URL", url)
        try:
            instance = dg.DagsterInstance.from_config(str(tmp_path))
            result = _run_crm(instance, tmp_path / "assay")
            assert result.success
            assert "Postgres" in type(instance.run_storage).__name__
            assert instance.get_run_by_id(result.run_id) is not None
            instance.dispose()
        finally:
            mp.undo()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
