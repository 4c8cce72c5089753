"""Policy files: deny by default, globs, and errors that name file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from governance import DEFAULT_POLICY_DIR, AuditRecord, PolicyError, connect, load_policy, verify
from governance.audit import records

if TYPE_CHECKING:
    from conftest import Installation


def test_demo_policy_grants_the_three_demo_agents() -> None:
    policy = load_policy(DEFAULT_POLICY_DIR)
    for agent in ("demo-intern", "demo-junior", "demo-senior"):
        grant = policy.grant_for(agent)
        assert grant is not None and grant.purpose == "demo"
        assert policy.allows(agent, "crm.customers") and policy.allows(agent, "erp.orders")
        assert not policy.allows(agent, "erp.invoices")
    assert policy.grant_for("someone-else") is None
    assert not policy.allows("someone-else", "crm.customers")


def test_column_lists_deny_wins(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "agents:\n  bot:\n    datasets: [crm.customers]\n    purpose: x\n"
        "    columns: {allow: [a, b], deny: [b]}\n",
        encoding="utf-8",
    )
    grant = load_policy(path).grant_for("bot")
    assert grant is not None
    assert grant.allows_column("a") and not grant.allows_column("b") and not grant.allows_column("c")


def test_every_problem_is_reported_with_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "agents:\n"  # 1
        "  good-bot:\n"  # 2
        "    datasets: [crm.customers]\n"  # 3
        "    purpose: support\n"  # 4
        "  bad-bot:\n"  # 5
        '    datasets: ["crm/../etc"]\n'  # 6
        "    purpose: support\n"  # 7
        '    row_filter: "billing_country = "\n'  # 8
        "    colums: {deny: [x]}\n"  # 9
        "  Bad Name:\n"  # 10
        "    datasets: [crm.x]\n",  # 11
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert f"{path}:6:" in text and "dataset glob" in text
    assert f"{path}:8:" in text and "row_filter does not parse" in text
    assert f"{path}:9:" in text and "unknown key 'colums'" in text
    assert "'Bad Name' is not valid" in text
    assert text.count("Fix:") == 4


def test_missing_purpose_yaml_errors_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("agents:\n  bot:\n    datasets: [crm.customers]\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"p\.yaml:\d+: agent bot: purpose"):
        load_policy(path)
    path.write_text("agents: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)
    with pytest.raises(PolicyError, match="no such policy"):
        load_policy(tmp_path / "missing.yaml")


def test_an_agent_granted_twice_across_files_is_an_error(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(
            "agents:\n  bot:\n    datasets: [x.y]\n    purpose: p\n", encoding="utf-8"
        )
    with pytest.raises(PolicyError, match="also granted"):
        load_policy(tmp_path)


def test_quota_is_validated_with_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "quota.yaml"
    path.write_text(
        "agents:\n"  # 1
        "  a-bot:\n"  # 2
        "    datasets: [crm.customers]\n"  # 3
        "    purpose: support\n"  # 4
        "    quota: {calls: 5000, rows: 1000000}\n"  # 5
        "  b-bot:\n"  # 6
        "    datasets: [crm.customers]\n"  # 7
        "    purpose: support\n"  # 8
        "    quota:\n"  # 9
        "      calls: -1\n"  # 10
        "      rows: lots\n"  # 11
        "      bytes: 5\n"  # 12
        "  c-bot:\n"  # 13
        "    datasets: [crm.customers]\n"  # 14
        "    purpose: support\n"  # 15
        "    quota: 100\n",  # 16
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert f"{path}:10: agent b-bot: quota calls is not a whole number" in text
    assert f"{path}:11: agent b-bot: quota rows is not a whole number" in text
    assert f"{path}:12: agent b-bot: unknown quota key 'bytes'" in text
    assert f"{path}:16: agent c-bot: quota is not a mapping" in text
    assert text.count("Fix:") == 4 and "a-bot" not in text
    path.write_text(
        "agents:\n  a-bot:\n    datasets: [crm.customers]\n    purpose: support\n    quota:\n      rows: 500\n",
        encoding="utf-8",
    )
    grant = load_policy(path).grant_for("a-bot")
    assert grant is not None and grant.quota == {"rows": 500} and grant.origin("quota.rows") == f"{path}:6"


def test_the_policy_digest_follows_the_text(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("agents:\n  bot:\n    datasets: [crm.customers]\n    purpose: x\n", encoding="utf-8")
    first = load_policy(path)
    assert first.files == (path,) and len(first.digest) == 64
    assert load_policy(path).digest == first.digest
    path.write_text(path.read_text() + "# a comment is a change of text\n", encoding="utf-8")
    assert load_policy(path).digest != first.digest


def _connect(install: Installation) -> None:
    connect(
        install.store,
        "junior-bot",
        install.tokens["junior-bot"],
        contracts_dir=install.contracts_dir,
        policy_path=install.policy_path,
        audit_key=install.audit_key,
    )


def _policy_records(install: Installation) -> list[AuditRecord]:
    return [r for r in records(install.store.engine()) if r.actor == "policy"]


def test_a_policy_change_is_recorded_once_with_names_and_keys_only(install: Installation) -> None:
    _connect(install)
    _connect(install)
    (first,) = _policy_records(install)
    assert (first.action, first.decision) == ("policy_change", "allow")
    assert first.detail["agents_added"] == ["de-bot", "intern-bot", "junior-bot", "senior-bot"]
    assert first.detail["files"] == [str(install.policy_path)] and first.detail["previous_digest"] is None
    text = install.policy_path.read_text()
    text = text.replace(
        '  de-bot:\n    datasets: ["crm.customers"]\n    purpose: support\n    columns: {deny: [segment]}\n'
        "    row_filter: \"billing_country = 'DE'\"\n",
        "",
    )
    text = text.replace(
        '  junior-bot:\n    datasets: ["crm.*"]\n    purpose: support\n',
        '  junior-bot:\n    datasets: ["crm.*"]\n    purpose: support\n    quota: {calls: 4321}\n',
    )
    text += '  new-bot:\n    datasets: ["crm.secret_x"]\n    purpose: support\n'
    install.policy_path.write_text(text)
    _connect(install)
    _connect(install)
    first, second = _policy_records(install)
    assert second.detail["previous_digest"] == first.detail["digest"] != second.detail["digest"]
    assert second.detail["agents_added"] == ["new-bot"] and second.detail["agents_removed"] == ["de-bot"]
    assert second.detail["agents_changed"] == {"junior-bot": ["quota"]}
    stored = json.dumps([r.detail for r in _policy_records(install)])
    for value in ("4321", "crm.secret_x", "billing_country", "crm.*"):
        assert value not in stored  # names and keys, never values
    assert verify(install.store.engine(), install.audit_key).ok


def test_a_policy_that_does_not_load_is_recorded_and_refused(install: Installation) -> None:
    _connect(install)
    good = install.policy_path.read_text()
    install.policy_path.write_text(good + "  bad-bot:\n    datasets: [crm.x]\n    purpose: SECRET PURPOSE\n")
    for _ in range(2):
        with pytest.raises(PolicyError, match="purpose"):
            _connect(install)
    change, invalid = _policy_records(install)
    assert (invalid.action, invalid.decision) == ("policy_invalid", "deny")
    assert invalid.detail["problems"] == [f"{install.policy_path}:{good.count(chr(10)) + 3}"]
    assert "SECRET" not in json.dumps(invalid.detail)
    install.policy_path.write_text(good)  # back to the recorded text: recorded again, as now in force
    _connect(install)
    assert [r.action for r in _policy_records(install)] == [
        "policy_change",
        "policy_invalid",
        "policy_change",
    ]
    assert _policy_records(install)[-1].detail["agents_changed"] == {}
    assert verify(install.store.engine(), install.audit_key).ok
