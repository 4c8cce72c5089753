"""Agents through the CLI after a demo run: what an agent sees, what is denied, and the audit trail."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text

from pipelines.cli import main

POLICY = """\
agents:
  reader-intern:
    datasets: ["crm.*", "erp.orders"]
    purpose: support
  reader-junior:
    datasets: ["crm.*", "erp.orders"]
    purpose: support
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cli")
    (root / "dagster").mkdir()
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (root / "policy.yaml").write_text(POLICY)
    env = {
        "ASSAY_HOME": str(root / "assay"),
        "DAGSTER_HOME": str(root / "dagster"),
        "ASSAY_POLICY": str(root / "policy.yaml"),
        "ASSAY_CATALOG_URL": "",
        "ASSAY_FAULT": "",
        "ASSAY_AUDIT_KEY": "11" * 32,
    }
    runner = CliRunner()
    assert runner.invoke(main, ["demo", "seed"], env=env).exit_code == 0
    ran = runner.invoke(main, ["run", "--json"], env=env)
    assert ran.exit_code == 4, ran.output  # the planted unreconciled batch is rejected
    tokens = {}
    for name, level in (("reader-intern", "intern"), ("reader-junior", "junior"), ("stranger", "senior")):
        added = runner.invoke(main, ["agents", "add", name, "--level", level], env=env)
        assert added.exit_code == 0, added.output
        tokens[name] = added.stdout.strip().splitlines()[0]
    expected = json.loads((root / "assay" / "demo" / "expected.json").read_text())
    return {"env": env, "tokens": tokens, "expected": expected, "home": root / "assay"}


def _read(demo: dict[str, Any], agent: str, *args: str) -> Result:
    env = {**demo["env"], "ASSAY_TOKEN": demo["tokens"][agent]}
    return CliRunner().invoke(main, ["read", *args, "--agent", agent], env=env)


def test_intern_reads_crm_with_no_canary_unmasked(demo: dict[str, Any]) -> None:
    result = _read(demo, "reader-intern", "crm.accounts", "--format", "json", "--limit", "10000")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["provenance"]["rows"] == len(body["rows"]) == 100, "interns get at most 100 rows a call"
    assert {"contact_email", "national_id", "phone", "contact_name"} <= set(body["provenance"]["withheld"])
    assert body["provenance"]["masks"] == {"account_id": "hash"}, "the key identifies: interns see it hashed"
    assert not any(row["account_id"].startswith("001") for row in body["rows"])
    for canary in demo["expected"]["canaries"]:
        assert canary not in result.stdout


def test_junior_sees_personal_data_masked_never_restricted(demo: dict[str, Any]) -> None:
    result = _read(demo, "reader-junior", "crm.accounts", "--format", "json", "--limit", "10000")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["provenance"]["masks"]["contact_email"] == "hash"
    assert "national_id" in body["provenance"]["withheld"]
    for canary in demo["expected"]["canaries"]:
        assert canary not in result.stdout


def test_explicit_restricted_column_is_denied_and_audited(demo: dict[str, Any]) -> None:
    result = _read(demo, "reader-intern", "crm.accounts", "--columns", "account_id,national_id")
    assert result.exit_code == 3
    assert "national_id" in result.stderr and "classification" in result.stderr
    engine = create_engine(f"sqlite:///{demo['home'] / 'catalog.db'}")
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT decision, record FROM audit_log WHERE actor = 'reader-intern' "
                "AND action = 'read' ORDER BY seq DESC LIMIT 1"
            )
        ).one()
    assert row.decision == "deny" and "national_id" in row.record


def test_agent_without_policy_reads_nothing(demo: dict[str, Any]) -> None:
    result = _read(demo, "stranger", "erp.orders")
    assert result.exit_code == 3
    assert "policy" in result.stderr


def test_where_literal_is_not_stored_in_clear(demo: dict[str, Any]) -> None:
    result = _read(
        demo, "reader-junior", "erp.orders", "--where", "customer_id = 'C100005'", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()[1:]
    assert lines and all(line.split(",")[1] == "C100005" for line in lines)
    engine = create_engine(f"sqlite:///{demo['home'] / 'catalog.db'}")
    with engine.connect() as conn:
        records = conn.execute(text("SELECT record FROM audit_log")).scalars().all()
    assert not any("C100005" in r for r in records)


def test_audit_verify_names_an_edited_record(demo: dict[str, Any]) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", "--json"], env=demo["env"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    engine = create_engine(f"sqlite:///{demo['home'] / 'catalog.db'}")
    with engine.begin() as conn:
        seq = conn.execute(
            text("SELECT seq FROM audit_log WHERE decision = 'deny' ORDER BY seq LIMIT 1")
        ).scalar()
        conn.execute(
            text(
                "UPDATE audit_log SET record = replace(record, '\"deny\"', '\"allow\"'), "
                "decision = 'allow' WHERE seq = :s"
            ),
            {"s": seq},
        )
    broken = runner.invoke(main, ["audit", "verify", "--json"], env=demo["env"])
    assert broken.exit_code == 4
    assert json.loads(broken.stdout) == {
        "ok": False,
        "records": json.loads(broken.stdout)["records"],
        "first_bad_seq": seq,
    }


def test_bad_token_is_denied(demo: dict[str, Any]) -> None:
    env = {**demo["env"], "ASSAY_TOKEN": demo["tokens"]["reader-junior"]}
    result = CliRunner().invoke(main, ["read", "crm.accounts", "--agent", "reader-intern"], env=env)
    assert result.exit_code == 3
    assert demo["tokens"]["reader-junior"] not in result.output


def test_certifications_and_rejections_are_in_the_audit_trail(demo: dict[str, Any]) -> None:
    engine = create_engine(f"sqlite:///{demo['home'] / 'catalog.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, dataset, decision, record FROM audit_log WHERE action LIKE 'batch.%' ORDER BY seq"
            )
        ).all()
    certified = [json.loads(r.record)["detail"] for r in rows if r.action == "batch.certify"]
    rejected = [json.loads(r.record)["detail"] for r in rows if r.action == "batch.reject"]
    assert {d["batch_id"] for d in certified} >= {"ORD20261101", "ORD20261102", "ORD20261104"}
    assert [d["batch_id"] for d in rejected] == ["ORD20261103"]
    assert rejected[0]["reasons"][0]["check"] == "controls"
    faulty = next(d for d in certified if d["batch_id"] == "ORD20261102")
    assert faulty["rows_read"] == faulty["rows_published"] + faulty["rows_quarantined"]
