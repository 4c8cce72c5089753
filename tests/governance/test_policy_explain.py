"""Policy explain and policy cases: what an agent would see and the rule behind it, checked against the
gateway itself and against the cases shipped beside the demo policy."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from governance import (
    DEFAULT_POLICY_DIR,
    PolicyError,
    connect,
    explain,
    get_agent,
    load_cases,
    load_policy,
    revoke_agent,
    run_cases,
)
from governance.policy_cases import case_files
from schemas.contract import load_contracts

if TYPE_CHECKING:
    from conftest import Installation

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = {c.id: c for c in load_contracts(REPO / "schemas" / "contracts")}
PERSONAL = {"contact_name", "contact_email", "phone", "national_id"}


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    "level, withheld, masked",
    [
        ("intern", PERSONAL | {"lifetime_value", "discount_rate"}, {"account_id": "hash"}),
        ("junior", {"national_id"}, {"contact_name": "redact", "contact_email": "hash", "phone": "partial"}),
        ("senior", set(), {}),
    ],
)
def test_each_demo_level_on_crm_accounts(level: str, withheld: set[str], masked: dict[str, str]) -> None:
    policy = load_policy(DEFAULT_POLICY_DIR)
    found = explain(policy, CONTRACTS, f"demo-{level}", "crm.accounts", level=level)
    assert found.decision == "allow" and found.purpose == "demo"
    assert set(found.withheld) == withheld and found.masked == masked
    assert len(found.columns) == len(CONTRACTS["crm.accounts"].columns)
    contract = REPO / "schemas" / "contracts" / "crm.accounts.yaml"
    by_name = {c.name: c for c in found.columns}
    national = by_name["national_id"]
    if level != "senior":
        assert national.rule == "classification" and "above the" in national.why
        assert national.source is not None and national.source.endswith(
            f"crm.accounts.yaml:{_line(contract, 'classification: restricted')}"
        )
    if level == "intern":
        key = by_name["account_id"]
        assert (key.decision, key.mask, key.rule) == ("masked", "hash", "identifier")
        assert key.source is not None and key.source.endswith(
            f"crm.accounts.yaml:{_line(contract, 'primaryKey')}"
        )
        assert (found.max_rows, found.max_rows_rule) == (100, "level")
        assert any("At most 100 rows per call at the intern level" in note for note in found.notes)
    else:
        assert found.max_rows == 10_000 and by_name["account_id"].decision == "shown"
    assert found.quota is not None and found.quota.calls_source.startswith(
        str(DEFAULT_POLICY_DIR / "demo.yaml")
    )
    assert any(note.startswith("Daily quota (UTC day)") for note in found.notes)
    if level == "junior":
        email = by_name["contact_email"]
        assert (email.decision, email.rule) == ("masked", "contract_mask")
        assert email.how is not None and "HMAC" in email.how and "demo" in email.how
    assert found.policy is not None and found.policy.startswith(f"{DEFAULT_POLICY_DIR / 'demo.yaml'}:")
    entry = _line(DEFAULT_POLICY_DIR / "demo.yaml", f"demo-{level}:")
    assert int(found.policy.rsplit(":", 1)[1]) in (entry, entry + 1)  # the agent's entry


def test_policy_rules_name_their_file_and_line(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "agents:\n"
        "  eu-bot:\n"
        '    datasets: ["crm.accounts"]\n'
        "    purpose: support\n"
        "    columns:\n"
        "      deny:\n"
        "        - annual_revenue\n"
        "        - region\n"
        "    row_filter: \"billing_country = 'DE'\"\n"
        "  picky-bot:\n"
        '    datasets: ["crm.accounts"]\n'
        "    purpose: support\n"
        "    columns: {allow: [account_id, region]}\n"
        "  broken-filter-bot:\n"
        '    datasets: ["crm.accounts"]\n'
        "    purpose: support\n"
        "    row_filter: \"national_id = 'x'\"\n"
    )
    policy = load_policy(policy_file)
    eu = explain(policy, CONTRACTS, "eu-bot", "crm.accounts", level="junior")
    columns = {c.name: c for c in eu.columns}
    assert columns["region"].rule == "policy_columns" and columns["region"].source == f"{policy_file}:8"
    assert columns["annual_revenue"].source == f"{policy_file}:7"
    assert (eu.row_filter, eu.row_filter_source) == ("billing_country = 'DE'", f"{policy_file}:9")
    picky = explain(policy, CONTRACTS, "picky-bot", "crm.accounts", level="senior")
    assert {c.name for c in picky.columns if c.decision == "shown"} == {"account_id", "region"}
    assert {c.source for c in picky.columns if c.decision == "withheld"} == {f"{policy_file}:13"}
    broken = explain(policy, CONTRACTS, "broken-filter-bot", "crm.accounts", level="junior")
    assert (broken.decision, broken.rule) == ("deny", "row_filter") and f"{policy_file}:17" in broken.reason


def test_no_grant_a_dataset_outside_the_globs_and_a_dead_token_say_why(install: Installation) -> None:
    policy = load_policy(install.policy_path)
    contracts = {c.id: c for c in load_contracts(install.contracts_dir)}
    stranger = explain(policy, contracts, "stranger", "crm.customers", level="senior")
    assert (stranger.decision, stranger.rule) == ("deny", "policy") and "no entry" in stranger.reason
    outside = explain(policy, contracts, "de-bot", "erp.orders", level="junior")
    assert (outside.decision, outside.rule) == ("deny", "policy")
    assert "matches none of" in outside.reason and f"{install.policy_path}:" in outside.reason
    assert outside.columns == ()
    engine = install.store.engine()
    revoke_agent(engine, "junior-bot", reason="left")
    dead = explain(policy, contracts, "junior-bot", "crm.customers", identity=get_agent(engine, "junior-bot"))
    assert (dead.decision, dead.rule) == ("deny", "identity") and "revoked" in dead.reason


@pytest.mark.parametrize("agent", ["intern-bot", "junior-bot", "senior-bot", "de-bot"])
def test_explain_says_what_the_gateway_does(install: Installation, agent: str) -> None:
    client = connect(
        install.store,
        agent,
        install.tokens[agent],
        contracts_dir=install.contracts_dir,
        policy_path=install.policy_path,
        audit_key=install.audit_key,
    )
    provenance = client.read("crm.customers").provenance
    contracts = {c.id: c for c in load_contracts(install.contracts_dir)}
    found = explain(
        load_policy(install.policy_path), contracts, agent, "crm.customers", identity=client.agent
    )
    assert set(found.withheld) == set(provenance["withheld"])
    assert found.masked == provenance["masks"]
    assert (found.row_filter is not None) == provenance["row_filter"]


def test_policy_folders_skip_cases_files_and_the_shipped_cases_pass() -> None:
    files, policy_path = case_files(DEFAULT_POLICY_DIR)
    assert [f.name for f in files] == ["demo.cases.yaml"] and policy_path == DEFAULT_POLICY_DIR
    policy = load_policy(DEFAULT_POLICY_DIR)
    assert set(policy.grants) == {"demo-intern", "demo-junior", "demo-senior"}
    results = run_cases(load_cases(files[0]), policy, CONTRACTS)
    assert len(results) >= 10 and all(r.passed for r in results), [r.problems for r in results]
    assert {r.case.level for r in results} == {"intern", "junior", "senior"}


def test_a_wrong_case_fails_and_says_how(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_POLICY_DIR / "demo.yaml", tmp_path / "demo.yaml")
    (tmp_path / "demo.cases.yaml").write_text(
        "- agent: demo-junior\n"
        "  level: junior\n"
        "  dataset: crm.accounts\n"
        "  expect: allow\n"
        "  withheld: []\n"
        "  masked: {contact_email: hash}\n"
        "- agent: demo-intern\n"
        "  level: intern\n"
        "  dataset: crm.accounts\n"
        "  columns: [phone]\n"
        "  expect: allow\n"
    )
    files, policy_path = case_files(tmp_path / "demo.yaml")
    junior, intern = run_cases(load_cases(files[0]), load_policy(policy_path), CONTRACTS)
    assert not junior.passed and junior.case.source.endswith("demo.cases.yaml:1")
    assert "withheld: withheld but not expected: national_id" in junior.problems
    assert any(p.startswith("masked: expected") for p in junior.problems)
    assert not intern.passed and intern.rule == "classification"
    assert intern.problems[0].startswith("expected allow, got deny (rule classification")


def test_a_broken_cases_file_names_file_line_and_fix(tmp_path: Path) -> None:
    cases = tmp_path / "p.cases.yaml"
    cases.write_text(
        "- agent: demo-junior\n  level: boss\n  dataset: crm.accounts\n  expect: maybe\n  colums: [a]\n"
    )
    with pytest.raises(PolicyError) as err:
        load_cases(cases)
    message = str(err.value)
    assert f"{cases}:2: level 'boss' is not known. Fix:" in message
    assert f"{cases}:4: expect 'maybe'" in message and f"{cases}:5: unknown key 'colums'" in message
    with pytest.raises(PolicyError, match="no such policy cases file"):
        case_files(tmp_path / "missing")
    (tmp_path / "sub").mkdir()
    with pytest.raises(PolicyError, match="no policy cases found"):
        case_files(tmp_path / "sub")
