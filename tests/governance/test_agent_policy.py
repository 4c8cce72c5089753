"""Policy files: deny by default, globs, and errors that name file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance import DEFAULT_POLICY_DIR, PolicyError, load_policy


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
