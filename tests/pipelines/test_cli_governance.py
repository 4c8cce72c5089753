"""The security officer's CLI: agent lifecycle, policy explain and test, audit anchor, export and verify,
run against a real catalog and a certified Delta table in tmp_path, with the shipped contracts and policy."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result
from deltalake import write_deltalake
from sqlalchemy import Engine, update

from governance import Catalog, Store
from governance.audit import canonical_json, chain_hash, records
from governance.catalog_schema import agents
from pipelines.cli import main
from schemas.contract import load_contract

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "schemas" / "contracts"
POLICIES = REPO / "schemas" / "policies"
CANARIES = ("Ada Canary", "ada@canary.test", "+49 30 5550101", "123-45-6789")
ACCOUNTS = pl.DataFrame(
    {
        "account_id": ["A1", "A2", "A3"],
        "account_name": ["Acme", "Globex", "Initech"],
        "contact_name": ["Ada Canary", "Bo Canary", "Cy Canary"],
        "contact_email": ["ada@canary.test", "bo@canary.test", "cy@canary.test"],
        "phone": ["+49 30 5550101", "+1 212 5550102", "+33 1 55500103"],
        "national_id": ["123-45-6789", "987-65-4321", "555-44-3333"],
        "billing_country": ["DE", "US", "FR"],
        "_batch_id": ["b1", "b1", "b1"],
    }
)


class Officer:
    """Runs `assay` as a security officer (and as agents) against one installation."""

    def __init__(self, root: Path) -> None:
        self.home = root / "assay"
        self.env = {
            "ASSAY_HOME": str(self.home),
            "ASSAY_CATALOG_URL": "",
            "ASSAY_CONTRACTS": str(CONTRACTS),
            "ASSAY_POLICY": str(POLICIES),
            "ASSAY_AUDIT_KEY": "22" * 32,
            "ASSAY_TOKEN": "",
        }
        self.store = Store(home=self.home, catalog_url=f"sqlite:///{self.home / 'catalog.db'}")

    @property
    def engine(self) -> Engine:
        return self.store.engine()

    def __call__(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(main, list(args), env={**self.env, **env})

    def add(self, name: str, level: str, *extra: str) -> str:
        added = self("agents", "add", name, "--level", level, *extra)
        assert added.exit_code == 0, added.output
        return added.stdout.strip()

    def read(self, agent: str, token: str, *args: str, **env: str) -> Result:
        return self(
            "read", "crm.accounts", "--agent", agent, "--format", "json", *args, ASSAY_TOKEN=token, **env
        )

    def seen(self, agent: str, token: str) -> dict[str, Any]:
        result = self.read(agent, token)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def officer(tmp_path: Path) -> Officer:
    """A catalog with crm.accounts certified at Delta version 0 (a few of its columns)."""
    officer = Officer(tmp_path)
    write_deltalake(str(officer.store.table_path("crm.accounts")), ACCOUNTS.to_arrow())
    catalog = Catalog(officer.engine)
    contract = load_contract(CONTRACTS / "crm.accounts.yaml")
    catalog.register_dataset(
        "crm.accounts",
        contract_version=contract.version,
        contract_checksum=contract.checksum,
        business_owner=contract.business_owner,
        operations_owner=contract.operations_owner,
    )
    batch = catalog.start_batch(
        "crm.accounts", batch_id="b1", checksum="1" * 64, source_file=None, business_date=None, run_id="t"
    )
    catalog.stage_batch(batch, delta_version=0, rows_read=3, rows_published=3, rows_quarantined=0)
    catalog.certify(batch, expected_version=None, new_version=0, rows=3, business_date=date(2024, 6, 1))
    return officer


def _last(officer: Officer, action: str) -> Any:
    return [r for r in records(officer.engine) if r.action == action][-1]


def test_promote_and_demote_change_what_the_agent_reads_and_are_audited(officer: Officer) -> None:
    token = officer.add("demo-junior", "junior")
    seen = officer.seen("demo-junior", token)
    assert "national_id" in seen["provenance"]["withheld"]
    assert seen["provenance"]["masks"]["contact_email"] == "hash"
    assert not any(canary in json.dumps(seen) for canary in CANARIES)

    no_reason = officer("agents", "promote", "demo-junior", "--to", "senior")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    sideways = officer("agents", "promote", "demo-junior", "--to", "intern", "--reason", "x")
    assert sideways.exit_code == 2 and "pick a level above" in sideways.stderr
    promoted = officer("agents", "promote", "demo-junior", "--to", "senior", "--reason", "passed review")
    assert promoted.exit_code == 0 and "promoted from junior to senior" in promoted.stdout
    seen = officer.seen("demo-junior", token)
    assert seen["rows"][0]["national_id"] == "123-45-6789" and seen["provenance"]["masks"] == {}
    record = _last(officer, "agent.promote")
    assert (record.detail["old_level"], record.detail["new_level"]) == ("junior", "senior")
    assert record.detail["reason"] == "passed review" and record.actor.startswith("operator")

    demoted = officer("agents", "demote", "demo-junior", "--to", "intern", "--reason", "incident 42")
    assert demoted.exit_code == 0, demoted.output
    assert {"contact_email", "national_id", "phone"} <= set(
        officer.seen("demo-junior", token)["provenance"]["withheld"]
    )
    assert _last(officer, "agent.demote").detail["reason"] == "incident 42"
    upward = officer("agents", "demote", "demo-junior", "--to", "senior", "--reason", "x")
    assert upward.exit_code == 2 and "below" in upward.stderr


def test_rotate_prints_a_new_token_once_and_the_old_one_fails_at_once(officer: Officer) -> None:
    old = officer.add("demo-intern", "intern")
    assert officer.read("demo-intern", old).exit_code == 0
    rotated = officer("agents", "rotate", "demo-intern", "--reason", "laptop lost")
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert new.startswith("assay_") and new != old and new not in rotated.stderr
    refused = officer.read("demo-intern", old)
    assert refused.exit_code == 3 and "authentication failed" in refused.stderr and old not in refused.output
    assert officer.read("demo-intern", new).exit_code == 0
    record = _last(officer, "agent.rotate")
    assert record.detail["reason"] == "laptop lost" and record.detail["old_token_id"] == old.split("_")[1]
    assert new.split("_", 2)[2] not in json.dumps([r.detail for r in records(officer.engine)])


def test_revoke_needs_a_reason_and_the_token_fails_at_once(officer: Officer) -> None:
    token = officer.add("demo-senior", "senior")
    assert officer("agents", "revoke", "demo-senior").exit_code == 2
    revoked = officer("agents", "revoke", "demo-senior", "--reason", "decommissioned")
    assert revoked.exit_code == 0, revoked.output
    refused = officer.read("demo-senior", token)
    assert refused.exit_code == 3 and "revoked" in refused.stderr
    assert _last(officer, "agent.revoke").detail["reason"] == "decommissioned"
    assert _last(officer, "connect").decision == "deny"
    again = officer("agents", "rotate", "demo-senior")
    assert again.exit_code == 2 and "revoked" in again.stderr


def test_tokens_expire(officer: Officer) -> None:
    never = officer("agents", "add", "demo-intern", "--level", "intern", "--expires-days", "0")
    assert never.exit_code == 2 and "--expires-days" in never.output
    token = officer.add("demo-intern", "intern", "--expires-days", "1")
    listed = json.loads(officer("agents", "list", "--json").stdout)
    expires = datetime.fromisoformat(listed[0]["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)
    assert officer.read("demo-intern", token).exit_code == 0
    with officer.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(agents).where(agents.c.name == "demo-intern").values(expires_at=past))
    refused = officer.read("demo-intern", token)
    assert refused.exit_code == 3 and "expired" in refused.stderr
    stuck = officer("agents", "rotate", "demo-intern")
    assert stuck.exit_code == 2 and "--expires-days" in stuck.stderr
    renewed = officer("agents", "rotate", "demo-intern", "--expires-days", "7")
    assert renewed.exit_code == 0 and officer.read("demo-intern", renewed.stdout.strip()).exit_code == 0


@pytest.mark.parametrize(
    "level, withheld, masked",
    [
        (
            "intern",
            {"contact_name", "contact_email", "phone", "national_id", "lifetime_value", "discount_rate"},
            {"account_id": "hash"},  # the primary key identifies an account: interns see it hashed
        ),
        ("junior", {"national_id"}, {"contact_name": "redact", "contact_email": "hash", "phone": "partial"}),
        ("senior", set(), {}),
    ],
)
def test_policy_explain_json_for_each_demo_level(
    officer: Officer, level: str, withheld: set[str], masked: dict[str, str]
) -> None:
    officer.add(f"demo-{level}", level)
    result = officer("policy", "explain", "--agent", f"demo-{level}", "--dataset", "crm.accounts", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["decision"], body["level"], body["level_from"], body["certified_version"]) == (
        "allow",
        level,
        "catalog",
        0,
    )
    assert set(body["withheld"]) == withheld and body["masked"] == masked
    for column in body["columns"]:
        assert column["decision"] in ("shown", "masked", "withheld") and column["rule"] and column["why"]
        assert column["source"] and ".yaml:" in column["source"]
    text = officer("policy", "explain", "--agent", f"demo-{level}", "--dataset", "crm.accounts")
    assert text.exit_code == 0 and f"demo-{level} at level {level}" in text.stdout and "ALLOW" in text.stdout


def test_policy_explain_for_no_grant_outside_the_globs_and_unregistered_agents(officer: Officer) -> None:
    officer.add("stranger", "senior")
    none = officer("policy", "explain", "--agent", "stranger", "--dataset", "crm.accounts", "--json")
    body = json.loads(none.stdout)
    assert (body["decision"], body["rule"]) == ("deny", "policy") and "no entry" in body["reason"]
    officer.add("demo-senior", "senior")
    outside = officer("policy", "explain", "--agent", "demo-senior", "--dataset", "hr.salaries")
    assert outside.exit_code == 0 and "DENY" in outside.stdout and "matches none of" in outside.stdout
    unknown = officer("policy", "explain", "--agent", "demo-junior", "--dataset", "crm.accounts")
    assert unknown.exit_code == 2 and "--level" in unknown.stderr
    asked = officer(
        "policy",
        "explain",
        "--agent",
        "demo-junior",
        "--dataset",
        "crm.accounts",
        "--level",
        "junior",
        "--json",
    )
    assert json.loads(asked.stdout)["level_from"] == "--level"


def test_policy_test_passes_on_the_shipped_cases_and_fails_on_a_wrong_one(
    officer: Officer, tmp_path: Path
) -> None:
    shipped = officer("policy", "test")
    assert shipped.exit_code == 0, shipped.output
    assert shipped.stdout.count("PASS") >= 10 and "FAIL" not in shipped.stdout
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "demo.yaml").write_text((POLICIES / "demo.yaml").read_text())
    (folder / "demo.cases.yaml").write_text(
        (POLICIES / "demo.cases.yaml").read_text() + "- name: intern may read phone numbers (wrong)\n"
        "  agent: demo-intern\n  level: intern\n  dataset: crm.accounts\n  columns: [phone]\n  expect: allow\n"
    )
    wrong = officer("policy", "test", str(folder))
    assert wrong.exit_code == 4
    assert "FAIL" in wrong.stdout and "intern may read phone numbers (wrong)" in wrong.stdout
    assert "expected allow, got deny (rule classification" in wrong.stdout
    as_json = officer("policy", "test", str(folder / "demo.cases.yaml"), "--json")
    assert as_json.exit_code == 4 and [r["passed"] for r in json.loads(as_json.stdout)].count(False) == 1
    (folder / "demo.cases.yaml").write_text(
        "- agent: demo-intern\n  level: intern\n  dataset: crm.accounts\n"
    )
    broken = officer("policy", "test", str(folder))
    assert broken.exit_code == 2 and f"{folder / 'demo.cases.yaml'}:1: expect None" in broken.stderr


def test_a_policy_with_an_error_refuses_every_read(officer: Officer, tmp_path: Path) -> None:
    token = officer.add("demo-senior", "senior")
    bad = tmp_path / "bad.yaml"
    bad.write_text('agents:\n  demo-senior:\n    datasets: "crm.*"\n    purpose: demo\n')
    before = len(records(officer.engine))
    refused = officer.read("demo-senior", token, ASSAY_POLICY=str(bad))
    assert refused.exit_code == 2 and "policy error" in refused.stderr
    assert f"{bad}:3:" in refused.stderr and "Fix:" in refused.stderr
    assert refused.stdout == ""
    logged = records(officer.engine)[before:]  # the failed load is audited (where, never what), nothing else
    assert [(r.action, r.decision) for r in logged] == [("policy_invalid", "deny")]
    assert f"{bad}:3" in str(logged[0].detail) and "crm.*" not in str(logged[0].detail)
    for args in (
        ("policy", "test", str(bad)),
        ("policy", "explain", "--agent", "demo-senior", "--dataset", "crm.accounts"),
    ):
        (bad.parent / "bad.cases.yaml").write_text("[]\n")
        assert officer(*args, ASSAY_POLICY=str(bad)).exit_code == 2


def test_audit_anchor_export_and_verify(officer: Officer, tmp_path: Path) -> None:
    token = officer.add("demo-junior", "junior")
    officer.read("demo-junior", token)
    anchored = officer("audit", "anchor", "--json")
    assert anchored.exit_code == 0, anchored.output
    kept = tmp_path / "anchors.jsonl"
    kept.write_text(anchored.stdout)
    seq = json.loads(anchored.stdout)["seq"]
    officer("agents", "promote", "demo-junior", "--to", "senior", "--reason", "review")
    officer.read("demo-junior", token)
    total = len(records(officer.engine))

    out = tmp_path / "siem.jsonl"
    exported = officer("audit", "export", "--output", str(out))
    assert exported.exit_code == 0 and f"exported {total} audit record(s)" in exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, total + 1))
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("hash", "prev_hash")}
        assert chain_hash(line["prev_hash"], canonical_json(body)) == line["hash"]
    since = officer("audit", "export", "--since", str(total - 2))
    assert [json.loads(line)["seq"] for line in since.stdout.splitlines()] == [total - 1, total]

    ok = officer("audit", "verify")
    assert ok.exit_code == 0 and f"{total} records" in ok.stdout and "anchor(s) hold" in ok.stdout
    # An attacker cuts the newest records and the catalog's anchors past the cut...
    with officer.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_log WHERE seq >= ?", (seq,))
        conn.exec_driver_sql("DELETE FROM audit_anchors WHERE seq >= ?", (seq,))
    assert officer("audit", "verify").exit_code == 0  # nothing left in the catalog says otherwise
    cut = officer("audit", "verify", "--json", "--anchors", str(kept))  # ... but the anchor kept outside does
    assert cut.exit_code == 4 and json.loads(cut.stdout)["first_bad_seq"] == seq
    text = officer("audit", "verify", "--anchors", str(kept))
    assert f"BROKEN at record {seq}" in text.stderr and "cut off" in text.stderr
    kept.write_text("{not json\n")
    assert officer("audit", "verify", "--anchors", str(kept)).exit_code == 2


def test_audit_verify_uses_the_key_to_catch_a_rehashed_tail(officer: Officer) -> None:
    token = officer.add("demo-intern", "intern")
    for _ in range(3):
        officer.read("demo-intern", token)
    assert officer("audit", "anchor").exit_code == 0
    with officer.engine.begin() as conn:
        rows = conn.exec_driver_sql("SELECT seq, prev_hash, record FROM audit_log ORDER BY seq").all()
        prev = rows[0].prev_hash
        for row in rows:  # edit seq 2 and re-hash everything after it
            record = row.record.replace('"allow"', '"deny"') if row.seq == 2 else row.record
            digest = chain_hash(prev, record)
            conn.exec_driver_sql(
                "UPDATE audit_log SET record = ?, prev_hash = ?, hash = ?, decision = ? WHERE seq = ?",
                (record, prev, digest, json.loads(record)["decision"], row.seq),
            )
            prev = digest
    broken = officer("audit", "verify", "--json")
    assert broken.exit_code == 4 and json.loads(broken.stdout) == {
        "ok": False,
        "records": 0,
        "first_bad_seq": 1,
    }
    wrong_key = officer("audit", "verify", ASSAY_AUDIT_KEY="zz")
    assert wrong_key.exit_code == 2 and "ASSAY_AUDIT_KEY" in wrong_key.stderr
